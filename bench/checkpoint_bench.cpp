// bench/checkpoint_bench.cpp — checkpointed BPTT (RecurrentOptions::checkpoint): peak memory and step time
// of one training step, with and without, for long sequences (issue 16).
//
//   checkpoint_bench --seq 1000                 # LSTM(32 => 256), batch 64, 1000 steps, plain
//   checkpoint_bench --seq 1000 --checkpoint    # the same, checkpointed every ⌈√T⌉ steps
//   checkpoint_bench --seq 1000 --checkpoint --every 50 --steps 3
//   checkpoint_bench --seq 1000 --checkpoint --last   # the loss on the last output only
//
// One step = zero_grad + forward + a Dense(256 => 1) head on every step (with --last: on the last
// output only, so that no (T, 256, 64) tensor sits outside the recurrence) + MSE + backward + Adam. The
// line printed gives the median step time (wall and CPU), the process's peak RSS (getrusage: run one configuration
// per process, as bench/compare.sh does), the tape entries and value bytes after the forward
// (tape_stats), a hash of the first step's gradients' bits and the last step's loss (both equal with and
// without checkpoints: the gradients are the same bit for bit).
// Run it once per configuration: the peak RSS of a process is its highest ever.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <rewind.hpp>

namespace {

// CPU time of the process so far (user + system), ms: less disturbed than wall time on a loaded machine.
double cpu_ms() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

double peak_rss_mib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // Linux: KiB
}

int usage(int rc) {
  std::fprintf(rc ? stderr : stdout,
               "usage: checkpoint_bench [--seq T] [--checkpoint] [--every K] [--last] [--steps N] [--input I] "
               "[--hidden H] [--batch B] [--threads N]\n");
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t T = 1000, every = 0, input = 32, hidden = 256, batch = 64;
  int steps = 3, threads = 1;
  bool ckpt = false, last = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::size_t {
      if (i + 1 >= argc) std::exit(usage(2));
      return static_cast<std::size_t>(std::stoul(argv[++i]));
    };
    if (a == "--seq") T = next();
    else if (a == "--checkpoint") ckpt = true;
    else if (a == "--every") every = next();
    else if (a == "--last") last = true;
    else if (a == "--steps") steps = static_cast<int>(next());
    else if (a == "--input") input = next();
    else if (a == "--hidden") hidden = next();
    else if (a == "--batch") batch = next();
    else if (a == "--threads") threads = static_cast<int>(next());
    else if (a == "--help" || a == "-h") return usage(0);
    else return usage(2);
  }
  rwd::set_num_threads(threads);
  rwd::Generator gen(0);
  rwd::RecurrentOptions ro;
  ro.checkpoint = {.on = ckpt, .every = every};
  ro.return_sequences = !last;
  rwd::Recurrent lstm = rwd::LSTM(input, hidden, {}, ro, gen);
  auto head = std::make_shared<rwd::Dense>(hidden, 1, rwd::Activation{}, true, rwd::Dtype::f32, gen);
  rwd::TimeDistributed td(std::static_pointer_cast<rwd::Module>(head));
  std::vector<rwd::Tensor> params = lstm.parameters();
  for (const rwd::Tensor& p : head->parameters()) params.push_back(p);
  rwd::Adam opt(params, {.lr = 1e-3});
  rwd::Generator dgen(1);
  const rwd::Tensor x = rwd::Tensor::randn({T, input, batch}, dgen);
  const rwd::Tensor y = last ? rwd::Tensor::randn({1, batch}, dgen) : rwd::Tensor::randn({T, 1, batch}, dgen);

  std::vector<double> ms, cpu;
  double loss = 0;
  rwd::TapeStats stats;
  std::uint64_t grad_hash = 1469598103934665603ull;  // FNV-1a over the first step's gradients' bits
  for (int s = 0; s < steps; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = cpu_ms();
    lstm.zero_grad(true);
    head->zero_grad(true);
    rwd::Tensor l = rwd::mse_loss(last ? (*head)(lstm(x)) : td(lstm(x)), y);
    if (s == 0) stats = rwd::tape_stats();
    loss = l.item();
    l.backward();
    if (s == 0)
      for (const rwd::Tensor& p : params)
        for (double v : p.grad().to_vector()) {
          const float f = static_cast<float>(v);
          std::uint32_t bits;
          std::memcpy(&bits, &f, sizeof bits);
          grad_hash = (grad_hash ^ bits) * 1099511628211ull;
        }
    opt.step();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    cpu.push_back(cpu_ms() - c0);
  }
  std::sort(ms.begin(), ms.end());
  std::sort(cpu.begin(), cpu.end());
  std::printf("case=lstm_%zu_%zu%s batch=%zu seq=%zu checkpoint=%s steps=%d median_ms=%.1f median_cpu_ms=%.1f peak_rss_mib=%.1f "
              "tape_entries=%zu tape_value_mib=%.1f grad_hash=%016llx loss=%.9g\n",
              input, hidden, last ? "_last" : "", batch, T, ckpt ? (every ? std::to_string(every).c_str() : "sqrtT") : "off", steps,
              ms[ms.size() / 2], cpu[cpu.size() / 2], peak_rss_mib(), stats.entries, static_cast<double>(stats.bytes) / (1 << 20),
              static_cast<unsigned long long>(grad_hash), loss);
}
