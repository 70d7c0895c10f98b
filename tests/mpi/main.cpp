// The MPI tests' main: one World for the whole run (MPI_Init once), then doctest on every rank.
// Run by CTest as `mpirun -np 2|3 rewind_mpi_tests`, and as a plain one-process program.
//   --throw-on-rank=R   instead of the tests: a fit in which rank R throws at epoch 1, batch 3; the whole
//                       job must end with that message (CTest: mpi_throw_ends_the_job).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstring>
#include <iostream>
#include <string>

#include "common.hpp"

namespace rwd_mpi_test {
rwd::World* g_world = nullptr;
}

using namespace rwd;

namespace {

int throw_on_rank(int bad) {
  World& world = *rwd_mpi_test::g_world;
  Setup s(world, Dtype::f64);
  DataParallel ddp(s.model, s.opt, world);
  DistributedSampler sampler(s.examples(), 10, 7, world);
  fit(s.opt, sampler.batches(),
      [&](std::size_t e, std::size_t b) {
        if (world.rank() == bad && b == 2)
          throw ValueError("deliberate failure on rank " + std::to_string(bad) + " at epoch " + std::to_string(e + 1) +
                           ", batch " + std::to_string(b + 1));
        return s.loss(sampler.indices(e, b));
      },
      {.epochs = 3, .parallel = &ddp, .share = sampler.share_fn()});
  std::cerr << "rank " << world.rank() << ": fit returned although rank " << bad << " threw\n";
  return 3;
}

}  // namespace

int main(int argc, char** argv) {
  World world;
  rwd_mpi_test::g_world = &world;
  for (int i = 1; i < argc; ++i)
    if (std::strncmp(argv[i], "--throw-on-rank=", 16) == 0) return throw_on_rank(std::atoi(argv[i] + 16));
  doctest::Context context(argc, argv);
  const int failed = context.run();
  // A rank whose check failed must not leave the others waiting; the results are summed so that every
  // rank exits with the same status.
  const double failures = world.sum(failed ? 1.0 : 0.0);
  return failures > 0 ? 1 : 0;
}
