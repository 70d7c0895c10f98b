// Audit of data-parallel training, the one-process side (session 13): DataParallel's step protocol
// (shares, a second backward, another thread, destruction mid-step), the sampler's arithmetic and
// lifetime, and fit with a DataParallel of another optimizer. The MPI side: tests/mpi/
// test_distributed_audit_s13.cpp.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <thread>

#include <rewind.hpp>

using namespace rwd;

namespace {

// Rank 0 of two ranks that do exactly the same: every sum doubles. A started sum is applied at
// wait_all(), as MPI writes the result then; pending() says how many are still in flight.
class Twins final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 2; }
  void allreduce_sum(void* data, std::size_t n, Dtype dtype) override { twice(data, n, dtype); }
  void start_allreduce_sum(void* data, std::size_t n, Dtype dtype) override {
    m_started.push_back({data, n, dtype});
    ++m_starts;
  }
  void progress() override {}
  void wait_all() override {
    for (const Started& s : m_started) twice(s.data, s.n, s.dtype);
    m_started.clear();
  }
  void allreduce_min(std::int64_t*, std::size_t) override {}
  using Communicator::broadcast;
  void broadcast(void*, std::size_t, int) override {}
  void barrier() override {}
  [[noreturn]] void abort(const std::string&) override { std::abort(); }
  std::size_t pending() const { return m_started.size(); }
  std::size_t starts() const { return m_starts; }

 private:
  struct Started {
    void* data;
    std::size_t n;
    Dtype dtype;
  };
  static void twice(void* data, std::size_t n, Dtype dtype) {
    for (std::size_t i = 0; i < n; ++i)
      if (dtype == Dtype::f32)
        static_cast<float*>(data)[i] *= 2;
      else
        static_cast<double*>(data)[i] *= 2;
  }
  std::vector<Started> m_started;
  std::size_t m_starts = 0;
};

// y = W·x: one parameter, a fixed input; the loss Σ c ⊙ W x has gradient c xᵀ.
struct Tiny : Module {
  Tensor W;
  Tiny() { W = register_parameter("W", Tensor::from_vector(std::vector<double>{1, 2, 3, 4}, {2, 2}, float64)); }
  std::string repr() const override { return "Tiny"; }
  Tensor loss(double scale = 1) const {
    const Tensor x = Tensor::from_vector(std::vector<double>{0.5, -1}, {2, 1}, float64);
    const Tensor c = Tensor::from_vector(std::vector<double>{1, -2}, {2, 1}, float64);
    return sum(c * matmul(W, x)) * scale;
  }
};

}  // namespace

TEST_CASE("distributed audit: share_fn keeps the sampler's split after the sampler is gone") {
  // FitOptions::share outlives a sampler made for one call: the function must not point into it.
  std::optional<DistributedSampler> sampler;
  sampler.emplace(11, 4, 1, 0, 3);  // batch 0: 4 examples over 3 ranks, rank 0 has 1 of them
  const auto share = sampler->share_fn();
  const double expected = sampler->share(0, 0);
  CHECK(expected == doctest::Approx(0.25));
  sampler.emplace(11, 4, 1, 2, 3);  // another sampler where the first one was: rank 2 has 2 of 4
  CHECK(share(0, 0) == expected);
  sampler.reset();
  CHECK(share(0, 2) == doctest::Approx(1.0 / 3));  // the last batch (3 examples) over 3 ranks
}

TEST_CASE("distributed audit: the sampler's counts do not overflow near SIZE_MAX") {
  constexpr std::size_t max = std::numeric_limits<std::size_t>::max();
  // ⌈max / 2⌉ batches of 2 (the last one holds 1 example: one rank)
  DistributedSampler halves(max, 2, 1, 0, 1);
  CHECK(halves.batches() == max / 2 + 1);
  // global batches of 2⁶³ over 3 ranks (the last one 2⁶³ − 1): parts of about 2⁶³/3, shares adding up to 1
  double shares = 0;
  for (int r = 0; r < 3; ++r) {
    DistributedSampler s(max, max / 2 + 1, 1, r, 3);
    CHECK(s.batches() == 2);
    const double share = s.share(0, 0);
    CHECK(share == doctest::Approx(1.0 / 3).epsilon(1e-12));
    shares += share;
  }
  CHECK(shares == doctest::Approx(1.0).epsilon(1e-12));
}

TEST_CASE("distributed audit: begin_step refuses a share outside [0, 1], NaN, and negatives other than the default") {
  Tiny m;
  SGD opt(m.parameters(), {.lr = 0.1});
  SelfCommunicator self;
  DataParallel ddp(m, opt, self);
  for (double bad : {1.5, std::nan(""), -0.5, -std::numeric_limits<double>::infinity(),
                     std::numeric_limits<double>::infinity()})
    CHECK_THROWS_WITH_AS(ddp.begin_step(bad), doctest::Contains("DataParallel::begin_step: share"), ValueError);
  ddp.begin_step();  // the default: 1/size
  m.loss().backward();
  ddp.synchronize();
}

TEST_CASE("distributed audit: the shares must add up to 1 over the ranks") {
  Tiny m;
  SGD opt(m.parameters(), {.lr = 0.1});
  {
    // one process: a share of 1/2 would silently halve the gradient
    SelfCommunicator self;
    DataParallel ddp(m, opt, self);
    opt.zero_grad();
    ddp.begin_step(0.5);
    m.loss().backward();
    CHECK_THROWS_WITH_AS(ddp.synchronize(),
                         "DataParallel::synchronize: the ranks' shares add up to 0.5, not 1 (each rank's share is "
                         "its part of the global batch)",
                         ValueError);
    // the step is over all the same: the next one begins
    opt.zero_grad();
    ddp.begin_step(1.0);
    m.loss().backward();
    ddp.synchronize();
    CHECK(m.W.grad().to_vector() == std::vector<double>{0.5, -1, -1, 2});
  }
  {
    // two ranks: ½ each is the mean; 1 each would double the gradient
    Twins twins;
    DataParallel ddp(m, opt, twins);
    opt.zero_grad();
    ddp.begin_step(0.5);
    m.loss().backward();
    ddp.synchronize();
    CHECK(m.W.grad().to_vector() == std::vector<double>{0.5, -1, -1, 2});
    opt.zero_grad();
    ddp.begin_step(1.0);
    m.loss().backward();
    CHECK_THROWS_WITH_AS(ddp.synchronize(), doctest::Contains("the ranks' shares add up to 2, not 1"), ValueError);
  }
}

TEST_CASE("distributed audit: a gradient that changes after its all-reduce started is refused, not lost") {
  Tiny m;
  SGD opt(m.parameters(), {.lr = 0.1});
  SelfCommunicator self;
  DataParallel ddp(m, opt, self);
  // Two backward sweeps in one step: the first one's hook started W's sum, the second adds to .grad()
  // afterwards — synchronize would write the first sweep's gradient back over both.
  opt.zero_grad();
  ddp.begin_step();
  m.loss().backward();
  m.loss(3).backward();
  CHECK_THROWS_WITH_AS(ddp.synchronize(), doctest::Contains("DataParallel::synchronize: parameter 0 (2, 2)"), ValueError);
  // Accumulating over micro-batches: backward without a step, then begin_step before the last one.
  opt.zero_grad();
  m.loss().backward();
  ddp.begin_step();
  m.loss(3).backward();
  ddp.synchronize();
  CHECK(m.W.grad().to_vector() == std::vector<double>{2, -4, -4, 8});  // (1 + 3) · c xᵀ
  // Without overlap nothing starts before synchronize: two sweeps are one gradient.
  DataParallel late(m, opt, self, {.overlap = false});
  opt.zero_grad();
  late.begin_step();
  m.loss().backward();
  m.loss(3).backward();
  late.synchronize();
  CHECK(m.W.grad().to_vector() == std::vector<double>{2, -4, -4, 8});
}

TEST_CASE("distributed audit: synchronize on another thread than begin_step is refused") {
  // The gradient-ready hook is registered on begin_step's thread; dropping it from another thread
  // would leave it registered there, pointing into this DataParallel.
  Tiny m;
  SGD opt(m.parameters(), {.lr = 0.1});
  SelfCommunicator self;
  DataParallel ddp(m, opt, self);
  opt.zero_grad();
  ddp.begin_step();
  bool refused = false;
  std::thread([&] {
    try {
      ddp.synchronize();
    } catch (const ValueError& e) {
      refused = std::string(e.what()).find("another thread") != std::string::npos;
    }
  }).join();
  CHECK(refused);
  m.loss().backward();
  ddp.synchronize();  // on begin_step's thread, the step ends as usual
  CHECK(m.W.grad().to_vector() == std::vector<double>{0.5, -1, -1, 2});
}

TEST_CASE("distributed audit: a DataParallel destroyed mid-step finishes its all-reduces first") {
  // The started sums write into the DataParallel's buffers when they arrive: it must not free them
  // while they are in flight (an exception unwinding between backward and synchronize).
  Tiny m;
  SGD opt(m.parameters(), {.lr = 0.1});
  Twins twins;
  {
    DataParallel ddp(m, opt, twins);
    ddp.begin_step(0.5);
    m.loss().backward();
    CHECK(twins.pending() == 1);  // W's bucket, started by the sweep
  }
  CHECK(twins.pending() == 0);
  // and a step begun but never swept starts its buckets too, so that every rank issues the same sums
  const std::size_t before = twins.starts();
  {
    DataParallel ddp(m, opt, twins);
    ddp.begin_step(0.5);
  }
  CHECK(twins.starts() == before + 1);
  CHECK(twins.pending() == 0);
}

TEST_CASE("distributed audit: synchronize without begin_step, or twice, is refused") {
  Tiny m;
  SGD opt(m.parameters(), {.lr = 0.1});
  SelfCommunicator self;
  DataParallel ddp(m, opt, self);
  CHECK_THROWS_WITH_AS(ddp.synchronize(), doctest::Contains("no step was begun"), ValueError);
  ddp.begin_step();
  CHECK_THROWS_WITH_AS(ddp.begin_step(), doctest::Contains("the previous step was not synchronized"), ValueError);
  m.loss().backward();
  ddp.synchronize();
  CHECK_THROWS_WITH_AS(ddp.synchronize(), doctest::Contains("no step was begun"), ValueError);
}

TEST_CASE("distributed audit: fit refuses a DataParallel made for another optimizer") {
  // Its parameters would never be averaged: the ranks would drift apart without a word.
  Tiny a, b;
  SGD opt_a(a.parameters(), {.lr = 0.1}), opt_b(b.parameters(), {.lr = 0.1});
  SelfCommunicator self;
  DataParallel ddp(a, opt_a, self);
  CHECK_THROWS_WITH_AS(fit(opt_b, 1, [&](std::size_t, std::size_t) { return b.loss(); }, {.parallel = &ddp}),
                       doctest::Contains("fit: FitOptions::parallel was made for another optimizer"), ValueError);
  CHECK_THROWS_WITH_AS(train_truncated(b, opt_b, 2, [&](std::size_t) { return b.loss(); }, {.k1 = 1, .parallel = &ddp}),
                       doctest::Contains("train_truncated: TruncatedOptions::parallel was made for another optimizer"),
                       ValueError);
  fit(opt_a, 1, [&](std::size_t, std::size_t) { return a.loss(); }, {.parallel = &ddp});  // its own: fine
}

TEST_CASE("distributed audit: a model converted after its DataParallel was made is refused at begin_step") {
  // Module::to changes the parameters in place: the buckets were laid out for the old dtype.
  Tiny m;
  SGD opt(m.parameters(), {.lr = 0.1});
  SelfCommunicator self;
  DataParallel ddp(m, opt, self);
  m.to(float32);
  CHECK_THROWS_WITH_AS(ddp.begin_step(),
                       "DataParallel::begin_step: parameter 0 is (2, 2) float32, but was (2, 2) float64 when the "
                       "DataParallel was made (convert the model before making it)",
                       ValueError);
  m.to(float64);
  ddp.begin_step();  // as it was: fine
  m.loss().backward();
  ddp.synchronize();
}
