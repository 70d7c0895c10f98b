// Data-parallel training under mpirun (any number of ranks, one included): each rank also trains the
// one-process reference itself (a SelfCommunicator) and compares.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "common.hpp"

using namespace rwd;
namespace fs = std::filesystem;

namespace {

World& world() { return *rwd_mpi_test::g_world; }

constexpr std::size_t kBatch = 10;  // global batch: 10 = 5 + 5 = 3 + 3 + 4 (an odd split with 3 ranks)

// 20 steps (4 epochs of 5 global batches) of fit on `comm`, from rank 0's weights.
std::vector<std::vector<double>> train_fit(Communicator& comm, Dtype dtype, double clip = 0) {
  Setup s(comm, dtype);
  DataParallel ddp(s.model, s.opt, comm);
  DistributedSampler sampler(s.examples(), kBatch, 3, comm);
  fit(s.opt, sampler.batches(), [&](std::size_t e, std::size_t b) { return s.loss(sampler.indices(e, b)); },
      {.epochs = 4, .clip_norm = clip, .parallel = &ddp, .share = sampler.share_fn()});
  return s.values();
}

// True on every rank when every rank's bytes equal rank 0's.
bool same_on_every_rank(Communicator& comm, const std::vector<std::vector<double>>& v) {
  std::int64_t same = 1;
  for (const auto& p : v) {
    std::vector<double> root = p;
    comm.broadcast(root.data(), root.size() * sizeof(double), 0);
    if (std::memcmp(root.data(), p.data(), p.size() * sizeof(double)) != 0) same = 0;
  }
  comm.allreduce_min(&same, 1);
  return same == 1;
}

// A scratch path every rank agrees on (rank 0's pid), on the shared /tmp.
std::string shared_path(Communicator& comm, const std::string& name) {
  std::int64_t pid = ::getpid();
  comm.broadcast(&pid, sizeof pid, 0);
  const fs::path dir = fs::temp_directory_path() / ("rewind-mpi-" + std::to_string(pid));
  if (comm.is_root()) fs::create_directories(dir);
  comm.barrier();
  return (dir / name).string();
}

}  // namespace

TEST_CASE("mpi: float64 training on N ranks equals one process to 1e-12 after 20 steps") {
  SelfCommunicator self;
  const auto one = train_fit(self, Dtype::f64);
  const auto many = train_fit(world(), Dtype::f64);
  const double d = max_difference(one, many);
  if (world().is_root()) MESSAGE("float64, " << world().size() << " ranks vs 1 process: largest difference " << d);
  CHECK(d <= 1e-12);
  // and with clipping (the norm of the averaged gradient is the global one)
  const double dc = max_difference(train_fit(self, Dtype::f64, 0.05), train_fit(world(), Dtype::f64, 0.05));
  CHECK(dc <= 1e-12);
}

TEST_CASE("mpi: float32 training on N ranks equals one process within rounding after 20 steps") {
  SelfCommunicator self;
  const double d = max_difference(train_fit(self, Dtype::f32), train_fit(world(), Dtype::f32));
  if (world().is_root()) MESSAGE("float32, " << world().size() << " ranks vs 1 process: largest difference " << d);
  CHECK(d <= 1e-5);
}

TEST_CASE("mpi: the ranks' parameters are bit-identical after every step") {
  // A hand-written loop: the two lines around backward().
  for (Dtype dtype : {Dtype::f32, Dtype::f64}) {
    Setup s(world(), dtype);
    DataParallel ddp(s.model, s.opt, world(), {.bucket_bytes = 64});  // several buckets
    CHECK(ddp.buckets() >= 2);
    DistributedSampler sampler(s.examples(), kBatch, 9, world());
    CHECK(same_on_every_rank(world(), s.values()));  // rank 0's weights everywhere from the start
    for (std::size_t step = 0; step < 20; ++step) {
      const std::size_t e = step / sampler.batches(), b = step % sampler.batches();
      s.opt.zero_grad();
      Tensor loss = s.loss(sampler.indices(e, b));
      ddp.begin_step(sampler.share(e, b));
      loss.backward();
      ddp.synchronize();
      s.opt.step();
      REQUIRE(same_on_every_rank(world(), s.values()));
    }
    CHECK(ddp.stats().steps == 20);
    // every bucket was started by the backward sweep's gradient-ready hook, none left for synchronize()
    CHECK(ddp.stats().started_in_sweep == 20 * ddp.buckets());
  }
  // without overlap every bucket waits for synchronize()
  Setup s(world(), Dtype::f32);
  DataParallel ddp(s.model, s.opt, world(), {.bucket_bytes = 64, .overlap = false});
  s.opt.zero_grad();
  Tensor loss = s.loss({0, 1, 2, 3, 4, 5});
  ddp.begin_step();
  loss.backward();
  ddp.synchronize();
  CHECK(ddp.stats().started_in_sweep == 0);
}

TEST_CASE("mpi: the sampler gives every example to exactly one rank once per epoch") {
  const std::size_t n = 23, batch = 7;  // batches of 7, 7, 7, 2 — the last one split too
  const int size = world().size();
  if (n - 3 * batch < static_cast<std::size_t>(size)) {
    CHECK_THROWS_AS(DistributedSampler(n, batch, 1, world()), ValueError);
    return;
  }
  DistributedSampler sampler(n, batch, 1, world());
  DistributedSampler single(n, batch, 1, 0, 1);
  for (std::size_t epoch = 0; epoch < 2; ++epoch) {
    std::vector<double> count(n, 0.0);
    for (std::size_t b = 0; b < sampler.batches(); ++b) {
      for (std::size_t i : sampler.indices(epoch, b)) count[i] += 1;
      CHECK(sampler.global_batch(epoch, b) == single.global_batch(epoch, b));  // same order for any size
    }
    world().allreduce_sum(count.data(), n, Dtype::f64);
    for (std::size_t i = 0; i < n; ++i) CHECK(count[i] == 1.0);
  }
}

TEST_CASE("mpi: a checkpoint written under MPI equals one written without, and resumes exactly") {
  const std::string path = shared_path(world(), "run.npz");
  const std::string local = shared_path(world(), "one-process-" + std::to_string(world().rank()) + ".npz");
  SelfCommunicator self;
  auto ten_steps = [&](Communicator& comm, Setup& s, DataParallel& ddp, std::size_t first_epoch, std::size_t epochs) {
    DistributedSampler sampler(s.examples(), kBatch, 4, comm);
    fit(s.opt, sampler.batches(),
        [&](std::size_t e, std::size_t b) { return s.loss(sampler.indices(first_epoch + e, b)); },
        {.epochs = epochs, .parallel = &ddp,
         .share = [&](std::size_t e, std::size_t b) { return sampler.share(first_epoch + e, b); }});
  };
  // 10 steps, checkpoint, 10 more — under MPI
  Setup a(world(), Dtype::f64);
  DataParallel da(a.model, a.opt, world());
  ten_steps(world(), a, da, 0, 2);
  save_checkpoint(path, a.model, a.opt, world());
  ten_steps(world(), a, da, 2, 2);
  // the same 10 steps in one process, saved by this rank alone
  Setup r(self, Dtype::f64);
  DataParallel dr(r.model, r.opt, self);
  ten_steps(self, r, dr, 0, 2);
  save_checkpoint(local, r.model, r.opt);
  NamedTensors mpi = load_npz(path), one = load_npz(local);
  REQUIRE(mpi.size() == one.size());
  double d = 0;
  for (std::size_t i = 0; i < mpi.size(); ++i) {
    CHECK(mpi[i].first == one[i].first);
    const auto u = mpi[i].second.to_vector(), v = one[i].second.to_vector();
    for (std::size_t j = 0; j < u.size(); ++j) d = std::max(d, std::fabs(u[j] - v[j]));
  }
  CHECK(d <= 1e-12);
  // every rank loads it into a fresh model (other weights) and continues: the same as never stopping
  Setup b(world(), Dtype::f64);
  load_checkpoint(path, b.model, b.opt, world());
  DataParallel db(b.model, b.opt, world());
  ten_steps(world(), b, db, 2, 2);
  CHECK(max_difference(a.values(), b.values()) == 0.0);
  // a file no rank can read: every rank throws, naming it
  CHECK_THROWS_WITH_AS(load_checkpoint(path + ".missing", b.model, b.opt, world()), doctest::Contains("could not load it"),
                       ValueError);
  CHECK(max_difference(a.values(), b.values()) == 0.0);
  world().barrier();
  if (world().is_root()) fs::remove_all(fs::path(path).parent_path());
}

TEST_CASE("mpi: ranks with different models are refused on every rank, naming the first difference") {
  if (world().size() == 1) return;
  Setup s(world(), Dtype::f32, world().rank() == 1 ? 9 : 8);
  CHECK_THROWS_WITH_AS(DataParallel(s.model, s.opt, world()),
                       "DataParallel: the ranks' models differ at entry 1: rank 0 has parameter '0.weight' (8, 3) float32, "
                       "rank 1 has parameter '0.weight' (9, 3) float32 (every rank must build the same model)",
                       ValueError);
}

TEST_CASE("mpi: clip_grad_norm with a NormReduction sees the norm of every rank's gradients") {
  // Rank r holds one gradient of 2 elements, both r + 1: the global 2-norm is √(Σ 2(r+1)²).
  Tensor p = Tensor::zeros({2}, Dtype::f64).set_requires_grad();
  const double v = world().rank() + 1.0;
  p.set_grad(Tensor::full({2}, v, Dtype::f64));
  double expected = 0;
  for (int r = 0; r < world().size(); ++r) expected += 2.0 * (r + 1) * (r + 1);
  expected = std::sqrt(expected);
  NormReduction reduce{.max = [](double x) {
                         std::int64_t bits;  // the max of non-negative doubles is the max of their bits
                         std::memcpy(&bits, &x, sizeof bits);
                         bits = -bits;
                         world().allreduce_min(&bits, 1);
                         bits = -bits;
                         std::memcpy(&x, &bits, sizeof x);
                         return x;
                       },
                       .sum = [](double x) { return world().sum(x); }};
  const double total = clip_grad_norm({p}, 1.0, 2.0, false, reduce);
  CHECK(total == doctest::Approx(expected).epsilon(1e-14));
  CHECK(p.grad().to_vector()[0] == doctest::Approx(v / (expected + 1e-6)).epsilon(1e-14));
}

TEST_CASE("mpi: validation and the history's loss are averaged over the ranks, the CSV written by rank 0") {
  Setup s(world(), Dtype::f64);
  DataParallel ddp(s.model, s.opt, world());
  DistributedSampler sampler(s.examples(), kBatch, 3, world());
  std::ostringstream progress;
  History h = fit(s.opt, sampler.batches(), [&](std::size_t e, std::size_t b) { return s.loss(sampler.indices(e, b)); },
                  {.epochs = 1, .validate = [&] { return static_cast<double>(world().rank()); }, .out = &progress,
                   .tty = 0, .parallel = &ddp, .share = sampler.share_fn()});
  CHECK(h.epochs[0].val_loss == doctest::Approx((world().size() - 1) / 2.0));
  if (world().is_root())  // rank 0 alone prints, with the averaged validation loss
    CHECK(progress.str().find("epoch 1/1  loss") == 0);
  else
    CHECK(progress.str().empty());
  std::vector<double> loss{h.epochs[0].loss};
  CHECK(same_on_every_rank(world(), {loss}));
  const std::string path = shared_path(world(), "history.csv");
  if (!world().is_root()) {
    h.write_csv(path);  // other ranks write nothing
    CHECK_FALSE(fs::exists(path));
  }
  world().barrier();
  if (world().is_root()) {
    h.write_csv(path);
    CHECK(fs::exists(path));
    fs::remove_all(fs::path(path).parent_path());
  }
}

TEST_CASE("mpi: train_truncated over N ranks, one sequence each, equals one process with all of them as a batch") {
  // Rank r runs sequence r (one batch column); the reference runs every rank's sequence as the columns
  // of one batch. The mean over the columns is the mean of the ranks' means, so the updates agree.
  const std::size_t steps = 24, ranks = static_cast<std::size_t>(world().size());
  auto value = [](std::size_t seq, std::size_t t) { return std::sin(0.3 * double(t) + double(seq)); };
  auto run = [&](Communicator& comm, std::vector<std::size_t> seqs) {
    Generator gen(21 + static_cast<std::uint32_t>(comm.rank()));
    Chain model(RNN(1, 5, "tanh", {}, gen), Dense(5, 1, {}, true, float64, gen));
    model.to(float64);
    Adam opt(model.parameters(), {.lr = 0.01});
    DataParallel ddp(model, opt, comm);
    const std::size_t n = seqs.size();
    const double mean = train_truncated(model, opt, steps, [&](std::size_t t) {
      std::vector<double> x(n), y(n);
      for (std::size_t j = 0; j < n; ++j) x[j] = value(seqs[j], t), y[j] = value(seqs[j], t + 1);
      return mse_loss(model(Tensor::from_vector(x, {1, n}, float64)), Tensor::from_vector(y, {1, n}, float64));
    }, {.k1 = 6, .k2 = 3, .parallel = &ddp});
    std::vector<std::vector<double>> v;
    for (const Tensor& p : model.parameters()) v.push_back(p.to_vector());
    return std::make_pair(v, mean);
  };
  SelfCommunicator self;
  std::vector<std::size_t> all(ranks);
  for (std::size_t r = 0; r < ranks; ++r) all[r] = r;
  const auto [one, one_mean] = run(self, all);
  const auto [many, many_mean] = run(world(), {static_cast<std::size_t>(world().rank())});
  CHECK(same_on_every_rank(world(), many));
  CHECK(max_difference(one, many) <= 1e-12);
  CHECK(many_mean == doctest::Approx(one_mean).epsilon(1e-12));
}
