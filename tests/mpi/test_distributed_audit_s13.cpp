// Audit of data-parallel training under mpirun (session 13): equivalence with one process on awkward
// models and batches, models and optimizers that differ across ranks, shares that do not add up, a
// checkpoint one rank cannot read, and a rank that drops its step. Every refusal is checked on every
// rank; a check that fails on one rank leaves the collectives of the others matched (no hang).
#include <doctest/doctest.h>

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <mutex>
#include <thread>

#include "common.hpp"

using namespace rwd;
namespace fs = std::filesystem;

namespace {

World& world() { return *rwd_mpi_test::g_world; }

// A model with every kind of parameter a data-parallel step must get right:
//   pred = W2·tanh(W1·x + b1) + W2·tanh(W1·(−x)) + b2 + frozen + rare·[index < 4]
// W1 and W2 are used twice; `rare` only by examples 0–3 (most batches and ranks send it nothing);
// `frozen` does not require a gradient; `unused` is never used. Each rank starts from its own weights.
struct Awkward : Module {
  Tensor W1, b1, W2, b2, rare, frozen, unused;
  Awkward(Dtype dt, std::uint32_t seed) {
    Generator gen(seed);
    W1 = register_parameter("W1", Tensor::randn({6, 3}, gen, dt) * 0.5);
    b1 = register_parameter("b1", Tensor::randn({6, 1}, gen, dt) * 0.1);
    W2 = register_parameter("W2", Tensor::randn({1, 6}, gen, dt) * 0.5);
    b2 = register_parameter("b2", Tensor::randn({1, 1}, gen, dt) * 0.1);
    rare = register_parameter("rare", Tensor::randn({1, 1}, gen, dt));
    frozen = register_parameter("frozen", Tensor::randn({1, 1}, gen, dt));
    frozen.set_requires_grad(false);
    unused = register_parameter("unused", Tensor::randn({2}, gen, dt));
  }
  std::string repr() const override { return "Awkward"; }
};

// 47 examples (global batches of 10: the last one 7), y = sin(2a) + b·c.
struct AwkwardSetup {
  static constexpr std::size_t kExamples = 47;
  Dtype dtype;
  Awkward model;
  Adam opt;
  std::vector<double> x, y;
  AwkwardSetup(Dtype dt, std::uint32_t seed, std::vector<Tensor> params = {})
      : dtype(dt), model(dt, seed), opt(params.empty() ? model.parameters() : params, {.lr = 0.03}) {
    Generator data(17);
    for (std::size_t i = 0; i < kExamples; ++i) {
      const double a = data.uniform(-1, 1), b = data.uniform(-1, 1), c = data.uniform(-1, 1);
      x.insert(x.end(), {a, b, c});
      y.push_back(std::sin(2 * a) + b * c);
    }
  }
  Tensor loss(const std::vector<std::size_t>& idx) {
    const std::size_t n = idx.size();
    std::vector<double> xb(3 * n), yb(n), mask(n);
    bool any_rare = false;
    for (std::size_t j = 0; j < n; ++j) {
      for (std::size_t f = 0; f < 3; ++f) xb[f * n + j] = x[3 * idx[j] + f];
      yb[j] = y[idx[j]];
      mask[j] = idx[j] < 4 ? 1.0 : 0.0;
      any_rare = any_rare || idx[j] < 4;
    }
    const Tensor X = Tensor::from_vector(xb, {3, n}, dtype);
    const Awkward& m = model;
    Tensor pred = matmul(m.W2, tanh(matmul(m.W1, X) + m.b1)) + matmul(m.W2, tanh(matmul(m.W1, X * -1.0))) + m.b2 + m.frozen;
    if (any_rare) pred = pred + m.rare * Tensor::from_vector(mask, {1, n}, dtype);
    return mse_loss(pred, Tensor::from_vector(yb, {1, n}, dtype));
  }
  std::vector<std::vector<double>> values() const {
    std::vector<std::vector<double>> v;
    for (const Tensor& p : model.parameters()) v.push_back(p.to_vector());
    return v;
  }
};

// 15 Adam steps (3 epochs of 5 global batches, the last of 7) on `comm`, from rank 0's weights.
std::vector<std::vector<double>> train_awkward(Communicator& comm, Dtype dtype, std::size_t bucket_bytes) {
  AwkwardSetup s(dtype, static_cast<std::uint32_t>(3 + 10 * comm.rank()));
  DataParallel ddp(s.model, s.opt, comm, {.bucket_bytes = bucket_bytes});
  DistributedSampler sampler(AwkwardSetup::kExamples, 10, 5, comm);
  fit(s.opt, sampler.batches(), [&](std::size_t e, std::size_t b) { return s.loss(sampler.indices(e, b)); },
      {.epochs = 3, .parallel = &ddp, .share = sampler.share_fn()});
  CHECK_FALSE(s.model.unused.grad().defined());  // no rank ever sent it a gradient
  return s.values();
}

// A scratch directory every rank agrees on (rank 0's pid), on the shared /tmp.
fs::path shared_dir(Communicator& comm) {
  std::int64_t pid = ::getpid();
  comm.broadcast(&pid, sizeof pid, 0);
  const fs::path dir = fs::temp_directory_path() / ("rewind-mpi-audit-" + std::to_string(pid));
  if (comm.is_root()) fs::create_directories(dir);
  comm.barrier();
  return dir;
}

// Ends the process (and so, by mpirun, the job) with a message if it is still alive after a minute:
// what a test that would otherwise deadlock on a regression fails with. It measures nothing.
class Watchdog {
 public:
  explicit Watchdog(const char* what)
      : m_thread([this, what] {
          std::unique_lock<std::mutex> lock(m_mutex);
          if (!m_done_cv.wait_for(lock, std::chrono::minutes(1), [this] { return m_done; })) {
            std::fprintf(stderr, "rank %d: deadlock: %s\n", world().rank(), what);
            std::abort();
          }
        }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(m_mutex);
      m_done = true;
    }
    m_done_cv.notify_all();
    m_thread.join();
  }

 private:
  std::mutex m_mutex;
  std::condition_variable m_done_cv;
  bool m_done = false;
  std::thread m_thread;
};

// The DataParallel constructor's refusal on this rank ("" when it accepted).
std::string refusal(Module& model, Optimizer& opt) {
  try {
    DataParallel ddp(model, opt, world());
  } catch (const ValueError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("mpi audit: sparse, unused, frozen and reused parameters, an uneven last batch: N ranks equal one process") {
  SelfCommunicator self;
  for (std::size_t bucket_bytes : {std::size_t{1}, std::size_t{1} << 20}) {  // a bucket per parameter; one bucket
    const auto one = train_awkward(self, Dtype::f64, bucket_bytes);
    const auto many = train_awkward(world(), Dtype::f64, bucket_bytes);
    CHECK(max_difference(one, many) <= 1e-12);
    CHECK(one[5] == many[5]);  // frozen: never moved
    const double d32 = max_difference(train_awkward(self, Dtype::f32, bucket_bytes),
                                      train_awkward(world(), Dtype::f32, bucket_bytes));
    CHECK(d32 <= 1e-5);
  }
}

TEST_CASE("mpi audit: optimizers that differ across ranks are refused on every rank") {
  if (world().size() == 1) return;
  const bool odd = world().rank() == 1;
  SUBCASE("the same shapes in another order") {
    // rank 1 lists `frozen` before `rare`, both (1, 1): their gradients would be summed crosswise
    AwkwardSetup s(Dtype::f64, 1);
    std::vector<Tensor> params = s.model.parameters();
    if (odd) std::swap(params[4], params[5]);
    Adam opt(params, {.lr = 0.03});
    CHECK(refusal(s.model, opt) ==
          std::string("DataParallel: the ranks' models differ at entry 13: rank 0 has optimizer parameter 4 'rare' "
                      "(1, 1) float64, rank 1 has optimizer parameter 4 'frozen' (1, 1) float64 (every rank must "
                      "build the same model)"));
  }
  SUBCASE("one more parameter") {
    AwkwardSetup s(Dtype::f64, 1);
    std::vector<Tensor> params = s.model.parameters();
    if (!odd) params.pop_back();
    Adam opt(params, {.lr = 0.03});
    CHECK(refusal(s.model, opt).find("DataParallel: the ranks' models differ at entry 15: rank 0 has no entry 15 (14 in all)") == 0);
  }
  SUBCASE("another learning rate") {
    AwkwardSetup s(Dtype::f64, 1);
    Adam opt(s.model.parameters(), {.lr = odd ? 0.1 : 0.03});
    const std::string r = refusal(s.model, opt);
    CHECK(r.find("DataParallel: the ranks' models differ at entry 8: rank 0 has optimizer Adam(lr=0.03, ") == 0);
    CHECK(r.find("rank 1 has optimizer Adam(lr=0.1, ") != std::string::npos);
  }
}

TEST_CASE("mpi audit: an optimizer parameter outside the model starts from rank 0's value on every rank") {
  AwkwardSetup s(Dtype::f64, 1);
  Tensor extra = Tensor::full({3}, 1.0 + world().rank(), Dtype::f64).set_requires_grad();
  std::vector<Tensor> params = s.model.parameters();
  params.push_back(extra);
  Adam opt(params, {.lr = 0.03});
  DataParallel ddp(s.model, opt, world());
  CHECK(extra.to_vector() == std::vector<double>{1, 1, 1});
}

TEST_CASE("mpi audit: shares that do not add up to 1 are refused on every rank") {
  if (world().size() == 1) return;
  AwkwardSetup s(Dtype::f64, 1);
  DataParallel ddp(s.model, s.opt, world());
  s.opt.zero_grad();
  Tensor loss = s.loss({0, 5, 9});
  ddp.begin_step(1.0);  // each rank thinks it has the whole batch
  loss.backward();
  const std::string says = "the ranks' shares add up to " + std::to_string(world().size()) + ", not 1";
  CHECK_THROWS_WITH_AS(ddp.synchronize(), doctest::Contains(says.c_str()), ValueError);
  // the step is over on every rank: the next one runs, with valid shares
  s.opt.zero_grad();
  loss = s.loss({0, 5, 9});
  ddp.begin_step(world().rank() == 0 ? 0.0 : 1.0 / (world().size() - 1));  // a rank may hold none of the batch
  loss.backward();
  ddp.synchronize();
}

TEST_CASE("mpi audit: a rank that drops its step mid-way does not leave the others waiting") {
  // Rank 1 begins a step, then its DataParallel is destroyed before synchronize (an exception
  // unwinding it); the other ranks' synchronize must still find rank 1's sums. Should they not, the
  // watchdog ends the job with a message instead of leaving it hanging.
  if (world().size() == 1) return;
  Watchdog watchdog("a rank dropped its step and the others waited for its sums");
  AwkwardSetup s(Dtype::f64, 1);
  {
    DataParallel ddp(s.model, s.opt, world(), {.bucket_bytes = 1});
    s.opt.zero_grad();
    Tensor loss = s.loss({1, 2, 3});
    ddp.begin_step();
    if (world().rank() != 1) {
      loss.backward();
      ddp.synchronize();
    } else {
      loss.backward();  // its sums start in the sweep, in flight when the DataParallel goes
    }
  }
  {
    DataParallel ddp(s.model, s.opt, world(), {.bucket_bytes = 1});
    s.opt.zero_grad();
    ddp.begin_step();
    if (world().rank() != 1) {
      s.loss({1, 2, 3}).backward();
      ddp.synchronize();
    }  // rank 1: begun, never swept
  }
  world().barrier();
  CHECK(true);
}

TEST_CASE("mpi audit: a checkpoint one rank cannot load changes no rank, optimizer state included") {
  const fs::path dir = shared_dir(world());
  const std::string good = (dir / "good.npz").string();
  {
    AwkwardSetup s(Dtype::f64, 1);
    DataParallel ddp(s.model, s.opt, world());
    s.opt.zero_grad();
    ddp.begin_step();
    s.loss({0, 1, 2}).backward();
    ddp.synchronize();
    s.opt.step();
    save_checkpoint(good, s.model, s.opt, world());
  }
  AwkwardSetup fresh(Dtype::f64, 99);  // never stepped: no optimizer state
  const auto before = fresh.values();
  const std::size_t state_before = fresh.opt.state_dict().size();
  const int last = world().size() - 1;
  const std::string mine = world().rank() == last && last > 0 ? good + ".missing" : good;
  const std::string says = "load_checkpoint: rank " + std::to_string(last) + " of";
  if (last > 0)
    CHECK_THROWS_WITH_AS(load_checkpoint(mine, fresh.model, fresh.opt, world()), doctest::Contains(says.c_str()), ValueError);
  CHECK(fresh.values() == before);
  CHECK(fresh.opt.state_dict().size() == state_before);  // rank 0 loaded, then put its state back
  world().barrier();
  if (world().is_root()) fs::remove_all(dir);
}

TEST_CASE("mpi audit: ranks that disagree on how many steps fit or train_truncated runs are refused on every rank") {
  // The rank with more batches would wait in its extra all-reduces forever. (Should fit start anyway,
  // the extra step throws instead, which ends the job with that message rather than hanging it.)
  if (world().size() == 1) return;
  AwkwardSetup s(Dtype::f64, 1);
  DataParallel ddp(s.model, s.opt, world());
  const auto unmatched = [] { throw ValueError("a step the other ranks do not run: the disagreement was not refused"); };
  // (rank 1: "train until stopped", as many batches as a size_t holds)
  const std::size_t batches = world().rank() == 1 ? std::numeric_limits<std::size_t>::max() : 2;
  const std::string says = "fit: the ranks disagree on batches (2 to 18446744073709551615)";
  CHECK_THROWS_WITH_AS(fit(s.opt, batches,
                           [&](std::size_t, std::size_t b) {
                             if (b == 2) unmatched();
                             return s.loss({b, b + 1});
                           },
                           {.epochs = 1, .parallel = &ddp}),
                       doctest::Contains(says.c_str()), ValueError);
  CHECK_THROWS_WITH_AS(fit(s.opt, 2,
                           [&](std::size_t e, std::size_t b) {
                             if (e == 1) unmatched();
                             return s.loss({b, b + 1});
                           },
                           {.epochs = world().rank() == 0 ? 2u : 1u, .parallel = &ddp}),
                       doctest::Contains("fit: the ranks disagree on epochs (1 to 2)"), ValueError);
  CHECK_THROWS_WITH_AS(train_truncated(s.model, s.opt, world().rank() == 1 ? 5 : 4,
                                       [&](std::size_t t) {
                                         if (t == 4) unmatched();
                                         return s.loss({t});
                                       },
                                       {.k1 = 2, .parallel = &ddp}),
                       doctest::Contains("train_truncated: the ranks disagree on steps (4 to 5)"), ValueError);
  // agreeing, they run
  fit(s.opt, 2, [&](std::size_t, std::size_t b) { return s.loss({b, b + 1}); }, {.epochs = 1, .parallel = &ddp});
}

TEST_CASE("mpi audit: ranks that load different checkpoints from one path are refused, and no rank changed") {
  // What a path on each node's own disk does (a stale copy on one node): every rank reads a file, each
  // a different one. Here the last rank reads another file than the others.
  if (world().size() == 1) return;
  const fs::path dir = shared_dir(world());
  const int last = world().size() - 1;
  for (int which = 0; which < 2; ++which) {
    AwkwardSetup s(Dtype::f64, 1 + static_cast<std::uint32_t>(which));
    s.opt.zero_grad();
    s.loss({0, 1, 2}).backward();
    s.opt.step();
    if (world().is_root()) save_checkpoint((dir / ("run" + std::to_string(which) + ".npz")).string(), s.model, s.opt);
  }
  world().barrier();
  AwkwardSetup fresh(Dtype::f64, 99);
  const auto before = fresh.values();
  const std::string mine = (dir / (world().rank() == last ? "run1.npz" : "run0.npz")).string();
  const std::string says = "load_checkpoint: rank " + std::to_string(last) + " of " + std::to_string(world().size()) +
                           " loaded other values than rank 0";
  CHECK_THROWS_WITH_AS(load_checkpoint(mine, fresh.model, fresh.opt, world()), doctest::Contains(says.c_str()), ValueError);
  CHECK(fresh.values() == before);
  CHECK(fresh.opt.state_dict().size() == 2);  // step and lr: no parameter state
  // the same file everywhere loads
  load_checkpoint((dir / "run0.npz").string(), fresh.model, fresh.opt, world());
  CHECK(fresh.opt.step_count() == 1);
  world().barrier();
  if (world().is_root()) fs::remove_all(dir);
}

TEST_CASE("mpi audit: the communicator's edge cases: nothing to send, float32 and float64, a rank that does not exist") {
  Communicator& c = world();
  c.allreduce_sum(nullptr, 0, Dtype::f64);
  c.start_allreduce_sum(nullptr, 0, Dtype::f32);
  c.progress();
  c.wait_all();
  c.allreduce_min(nullptr, 0);
  c.broadcast(nullptr, 0, 0);
  CHECK(c.broadcast(std::string(), 0).empty());
  std::vector<float> f(3, 1.5f);
  std::vector<double> d(3, 0.25);
  c.start_allreduce_sum(f.data(), f.size(), Dtype::f32);
  c.allreduce_sum(d.data(), d.size(), Dtype::f64);
  c.wait_all();
  CHECK(f == std::vector<float>(3, 1.5f * static_cast<float>(c.size())));
  CHECK(d == std::vector<double>(3, 0.25 * c.size()));
  std::int64_t v[2] = {c.rank(), -c.rank()};
  c.allreduce_min(v, 2);
  CHECK(v[0] == 0);
  CHECK(v[1] == -(c.size() - 1));
  // every rank refuses a root that does not exist, before any message is sent
  CHECK_THROWS_WITH_AS(c.broadcast(d.data(), 8, c.size()), doctest::Contains("does not exist"), ValueError);
  CHECK_THROWS_WITH_AS(c.broadcast(std::string("x"), -1), doctest::Contains("does not exist"), ValueError);
  c.barrier();
}
