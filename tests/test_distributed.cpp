// Data-parallel training's one-process side (built with or without MPI): the World outside mpirun,
// the sampler's split for any number of ranks, DataParallel on one process, clip_grad_norm's reduction.
// (The MPI runs themselves: tests/mpi, under mpirun.)
#include <doctest/doctest.h>

#include <cstdlib>
#include <set>

#include <rewind.hpp>

using namespace rwd;

TEST_CASE("distributed: a World outside mpirun is one process, and refuses when MPI is required") {
  if (launched_ranks() > 0) return;  // (this binary is not meant to run under mpirun)
  {
    World world;
    CHECK(world.size() == 1);
    CHECK(world.rank() == 0);
    CHECK_FALSE(world.is_mpi());
    double v = 2.5;
    world.allreduce_sum(&v, 1, Dtype::f64);
    CHECK(v == 2.5);
    CHECK(world.broadcast(std::string("hello"), 0) == "hello");
    CHECK_THROWS_WITH_AS(World(), "World: one already exists in this process (MPI is initialized once)", ValueError);
  }
  CHECK_THROWS_WITH_AS(World(/*require_mpi=*/true), doctest::Contains("World: MPI was required, but this process was not started by mpirun"),
                       ValueError);
}

TEST_CASE("distributed: without MPI, a process that mpirun started is refused with what is missing") {
  if (mpi_available() || launched_ranks() > 0) return;  // (a build without MPI, outside mpirun)
  ::setenv("OMPI_COMM_WORLD_SIZE", "2", 1);  // what Open MPI's mpirun tells each rank
  CHECK(launched_ranks() == 2);
  CHECK_THROWS_WITH_AS(World(),
                       "World: mpirun started this process as one of 2 ranks, but rewind was built without MPI "
                       "(libopenmpi-dev was not found when it was configured): install it (scripts/deps.sh: "
                       "rewind_install_mpi) and rebuild",
                       ValueError);
  ::unsetenv("OMPI_COMM_WORLD_SIZE");
  CHECK(launched_ranks() == 0);
}

TEST_CASE("distributed: the sampler splits each global batch over any number of ranks, every example once") {
  const std::size_t n = 103, batch = 16;  // 6 batches of 16 and one of 7
  DistributedSampler one(n, batch, 42, 0, 1);
  CHECK(one.batches() == 7);
  for (int size : {1, 2, 3, 5, 7}) {
    std::vector<DistributedSampler> ranks;
    for (int r = 0; r < size; ++r) ranks.emplace_back(n, batch, 42, r, size);
    for (std::size_t epoch = 0; epoch < 3; ++epoch) {
      std::vector<int> count(n, 0);
      for (std::size_t b = 0; b < one.batches(); ++b) {
        std::vector<std::size_t> joined;
        double shares = 0;
        for (int r = 0; r < size; ++r) {
          const auto part = ranks[r].indices(epoch, b);
          CHECK(part.size() >= 1);
          joined.insert(joined.end(), part.begin(), part.end());
          shares += ranks[r].share(epoch, b);
          for (std::size_t i : part) count[i] += 1;
        }
        CHECK(joined == one.global_batch(epoch, b));  // the global order does not depend on the ranks
        CHECK(shares == doctest::Approx(1.0).epsilon(1e-15));
      }
      for (std::size_t i = 0; i < n; ++i) CHECK(count[i] == 1);
    }
  }
  // seeded: the same seed, the same order; epochs differ
  CHECK(DistributedSampler(n, batch, 42, 0, 1).global_batch(1, 0) == one.global_batch(1, 0));
  CHECK(one.global_batch(0, 0) != one.global_batch(1, 0));
  CHECK(DistributedSampler(n, batch, 43, 0, 1).global_batch(0, 0) != one.global_batch(0, 0));
  // a batch too small to give every rank an example
  CHECK_THROWS_WITH_AS(DistributedSampler(103, 16, 1, 0, 8),
                       "DistributedSampler: 103 examples in global batches of 16 leave a batch of 7, fewer than the 8 "
                       "ranks (each needs at least one example)",
                       ValueError);
}

TEST_CASE("distributed: DataParallel on one process trains exactly like plain fit") {
  auto run = [](bool parallel) {
    Generator gen(3);
    Chain model(Dense(2, 6, "tanh", true, float64, gen), Dense(6, 1, {}, true, float64, gen));
    Adam opt(model.parameters(), {.lr = 0.05});
    Tensor x = Tensor::randn({2, 12}, gen, float64), y = Tensor::randn({1, 12}, gen, float64);
    SelfCommunicator self;
    DataParallel ddp(model, opt, self, {.bucket_bytes = 32});
    fit(opt, 3, [&](std::size_t, std::size_t) { return mse_loss(model(x), y); },
        {.epochs = 2, .clip_norm = 0.5, .parallel = parallel ? &ddp : nullptr});
    std::vector<double> v;
    for (const Tensor& p : model.parameters())
      for (double e : p.to_vector()) v.push_back(e);
    return std::make_pair(v, ddp.buckets());
  };
  const auto [plain, _] = run(false);
  const auto [ddp, buckets] = run(true);
  // last parameter first, a bucket closing once it holds 32 bytes: {1.bias 8 B, 1.weight 48 B},
  // {0.bias 48 B}, {0.weight 96 B}
  CHECK(buckets == 3);
  CHECK(plain == ddp);  // bit for bit
}

TEST_CASE("distributed: clip_grad_norm with a NormReduction uses the reduced max and sum") {
  // Two "processes" in one: this one holds g = (3, 4); the reduction adds another's (0, 12) — whose
  // largest |g| is 12 and whose Σ (|g|/12)² is 1.
  Tensor p = Tensor::zeros({2}, float64).set_requires_grad();
  p.set_grad(Tensor::from_vector(std::vector<double>{3, 4}, {2}, float64));
  int maxes = 0, sums = 0;
  NormReduction reduce{.max = [&](double x) { return ++maxes, std::max(x, maxes == 1 ? 12.0 : 0.0); },
                       .sum = [&](double x) { return ++sums, x + 1.0; }};
  const double total = clip_grad_norm({p}, 1.0, 2.0, false, reduce);
  CHECK(total == doctest::Approx(13.0).epsilon(1e-15));  // √(9 + 16 + 144)
  CHECK(maxes == 2);  // the largest |g|, and the non-finite flag
  CHECK(sums == 1);
  CHECK(p.grad().to_vector()[1] == doctest::Approx(4.0 / (13.0 + 1e-6)).epsilon(1e-15));
  // a NaN elsewhere (the flag reduces to 2): every process's total is NaN; with error_if_nonfinite the
  // finite ones say the element is on another process
  p.set_grad(Tensor::from_vector(std::vector<double>{3, 4}, {2}, float64));
  NormReduction nan_elsewhere{.max = [](double x) { return x == 0 ? 2.0 : x; }, .sum = [](double x) { return x; }};
  CHECK_THROWS_WITH_AS(clip_grad_norm({p}, 1.0, 2.0, true, nan_elsewhere),
                       doctest::Contains("the non-finite element is on another process"), NonFiniteGradError);
  CHECK(p.grad().to_vector()[0] == 3.0);
  // half a reduction is a mistake
  CHECK_THROWS_WITH_AS(clip_grad_norm({p}, 1.0, 2.0, false, NormReduction{.max = [](double x) { return x; }, .sum = {}}),
                       "clip_grad_norm: the NormReduction needs both max and sum (one is empty)", ValueError);
}
