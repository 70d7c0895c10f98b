// bench/mpi_bench — data-parallel training's cost: step time and all-reduce overlap (MPI builds only).
//
//   OPENBLAS_NUM_THREADS=1 ./build/mpi_bench --threads 2                 # 1 rank × 2 threads
//   OPENBLAS_NUM_THREADS=1 mpirun -np 2 ./build/mpi_bench --threads 1    # 2 ranks × 1 thread
//
// lstm_medium of bench/rewind_bench (LSTM 32 → 256, 50 steps, a Dense head on every step, Adam, MSE)
// at a global batch of 64 split over the ranks. Each configuration runs twice: with the all-reduces
// started from the backward sweep (overlap=on, DataParallel's default) and all after it (overlap=off).
// One line per run from rank 0, the figures per step (medians of the slowest rank's times):
//   step_ms       the whole step (zero_grad, forward, backward, synchronize, Adam)
//   exposed_ms    synchronize(): from the end of the sweep until every sum has arrived — the part of
//                 the all-reduce time the step waits for. With overlap=off it is the whole all-reduce.
//   span_ms       from the first bucket's start to the last sum's arrival
//   tail_ms       from the last bucket's start to the last sum's arrival
//   hidden        1 − exposed(on) / exposed(off): how much of the all-reduce the sweep hides
// and the same bytes summed alone right after a barrier (the pure cost, without waiting for a slower
// rank). --layers=2 stacks two LSTM layers: the top layer's weights are final halfway through the
// sweep, so their bucket has the bottom layer's backward to hide behind (one layer's weights are all
// final only when the sweep reaches t = 0, at its very end).
// It never checks a time.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <rewind.hpp>

using namespace rwd;

namespace {

double seconds() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// The slowest rank's value.
double slowest(Communicator& comm, double v) {
  std::int64_t bits = -static_cast<std::int64_t>(v * 1e9);  // ns, as an integer for min/max
  comm.allreduce_min(&bits, 1);
  return static_cast<double>(-bits) / 1e9;
}

struct Result {
  double step = 0, exposed = 0, span = 0, tail = 0;
  std::size_t buckets = 0, bytes = 0;
};

Result run(Communicator& comm, bool overlap, std::size_t global_batch, int warmup, int steps, std::size_t bucket_bytes,
           std::size_t layers) {
  const std::size_t input = 32, hidden = 256, seq = 50;
  Generator gen(0);
  Chain model(LSTM(input, hidden, {}, {.num_layers = layers, .return_sequences = true}, gen),
              TimeDistributed(Dense(hidden, 1, Activation{}, true, Dtype::f32, gen)));
  Adam opt(model.parameters(), {.lr = 1e-3});
  DataParallel ddp(model, opt, comm, {.bucket_bytes = bucket_bytes, .overlap = overlap});
  DistributedSampler sampler(global_batch, global_batch, 1, comm, /*shuffle=*/false);
  const std::size_t local = sampler.indices(0, 0).size();
  Generator data(1 + static_cast<std::uint32_t>(comm.rank()));
  Tensor x = Tensor::randn({seq, input, local}, data), y = Tensor::randn({seq, 1, local}, data);

  std::vector<double> step_s, exposed_s, span_s, tail_s;
  for (int i = 0; i < warmup + steps; ++i) {
    comm.barrier();
    ddp.reset_stats();
    const double t0 = seconds();
    opt.zero_grad();
    reset(model);
    Tensor loss = mse_loss(model(x), y);
    ddp.begin_step(sampler.share(0, 0));
    loss.backward();
    ddp.synchronize();
    opt.step();
    const double t = seconds() - t0;
    if (i < warmup) continue;
    step_s.push_back(slowest(comm, t));
    exposed_s.push_back(slowest(comm, ddp.stats().exposed));
    span_s.push_back(slowest(comm, ddp.stats().span));
    tail_s.push_back(slowest(comm, ddp.stats().tail));
  }
  return {median(step_s), median(exposed_s), median(span_s), median(tail_s), ddp.stats().buckets, ddp.stats().bytes};
}

}  // namespace

int main(int argc, char** argv) {
  World world;
  int threads = 1, warmup = 3, steps = 20;
  std::size_t layers = 1;
  std::size_t global_batch = 64, bucket_kib = 256;
  for (int i = 1; i < argc; ++i) {
    auto value = [&](const char* name) -> const char* {
      const std::size_t n = std::strlen(name);
      return std::strncmp(argv[i], name, n) == 0 && argv[i][n] == '=' ? argv[i] + n + 1 : nullptr;
    };
    if (const char* v = value("--threads")) threads = std::atoi(v);
    else if (const char* v = value("--steps")) steps = std::atoi(v);
    else if (const char* v = value("--warmup")) warmup = std::atoi(v);
    else if (const char* v = value("--batch")) global_batch = std::strtoul(v, nullptr, 10);
    else if (const char* v = value("--bucket-kib")) bucket_kib = std::strtoul(v, nullptr, 10);
    else if (const char* v = value("--layers")) layers = std::strtoul(v, nullptr, 10);
    else {
      if (world.is_root())
        std::fprintf(stderr, "usage: [mpirun -np N] mpi_bench [--threads=T] [--steps=N] [--warmup=N] [--batch=64] [--bucket-kib=256] [--layers=1]\n");
      return 2;
    }
  }
  set_num_threads(threads);
  Result on = run(world, true, global_batch, warmup, steps, bucket_kib * 1024, layers);
  Result off = run(world, false, global_batch, warmup, steps, bucket_kib * 1024, layers);
  // The all-reduce alone: the same bytes in one blocking sum right after a barrier (no rank waiting
  // for a slower one's sweep), the pure cost of moving them.
  std::vector<float> buffer(off.bytes / sizeof(float), 1.0f);
  std::vector<double> pure;
  for (int i = 0; i < warmup + steps; ++i) {
    world.barrier();
    const double t0 = seconds();
    world.allreduce_sum(buffer.data(), buffer.size(), Dtype::f32);
    if (i >= warmup) pure.push_back(slowest(world, seconds() - t0));
  }
  if (world.is_root()) {
    for (const auto& [name, r] : {std::pair<const char*, const Result&>{"on", on}, {"off", off}})
      std::printf("mpi_bench case=lstm_medium layers=%zu ranks=%d threads=%d global_batch=%zu overlap=%s step_ms=%.2f "
                  "exposed_ms=%.3f span_ms=%.3f tail_ms=%.3f buckets=%zu bytes=%zu examples_per_s=%.0f\n",
                  layers, world.size(), threads, global_batch, name, r.step * 1e3, r.exposed * 1e3, r.span * 1e3, r.tail * 1e3,
                  r.buckets, r.bytes, static_cast<double>(global_batch) / r.step);
    if (world.size() > 1)
      std::printf("mpi_bench all-reduce per step %.3f ms (overlap off; %.3f ms of it the sum alone, after a barrier), "
                  "exposed with overlap %.3f ms: hidden %.0f%%\n",
                  off.exposed * 1e3, median(pure) * 1e3, on.exposed * 1e3,
                  off.exposed > 0 ? 100.0 * (1.0 - on.exposed / off.exposed) : 0.0);
  }
  return 0;
}
