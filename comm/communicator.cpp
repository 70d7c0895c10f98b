#include "communicator.hpp"

#include <cstdlib>
#include <cstring>
#include <iostream>

#include "../core/error.hpp"
#include "backend.hpp"

namespace rwd {

double Communicator::sum(double value) {
  allreduce_sum(&value, 1, Dtype::f64);
  return value;
}

std::string Communicator::broadcast(const std::string& text, int root) {
  // The length first, so that the other ranks can make room for the characters.
  std::uint64_t n = text.size();
  broadcast(&n, sizeof n, root);
  std::string out = rank() == root ? text : std::string(n, '\0');
  if (n) broadcast(out.data(), n, root);
  return out;
}

void SelfCommunicator::broadcast(void*, std::size_t, int root) {
  if (root != 0)
    throw ValueError("Communicator::broadcast: root rank " + std::to_string(root) + " does not exist (one process, rank 0)");
}

void SelfCommunicator::abort(const std::string& message) {
  std::cerr << "rewind: rank 0 of 1: " << message << std::endl;
  std::abort();
}

bool mpi_available() { return detail::built_with_mpi(); }

int launched_ranks() {
  // Open MPI's mpirun sets OMPI_COMM_WORLD_SIZE; PMI launchers (MPICH's hydra, Slurm's srun) PMI_SIZE.
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"}) {
    if (const char* v = std::getenv(var); v && *v) {
      const int n = std::atoi(v);
      if (n > 0) return n;
    }
  }
  return 0;
}

namespace {
bool g_world_alive = false;
bool g_mpi_used = false;  // MPI was initialized once: it cannot be again after MPI_Finalize
}  // namespace

World::World(bool require_mpi) {
  if (g_world_alive) throw ValueError("World: one already exists in this process (MPI is initialized once)");
  const int launched = launched_ranks();
  if (launched > 0) {
    if (!detail::built_with_mpi())
      throw ValueError("World: mpirun started this process as one of " + std::to_string(launched) +
                       " ranks, but rewind was built without MPI (libopenmpi-dev was not found when it was "
                       "configured): install it (scripts/deps.sh: rewind_install_mpi) and rebuild");
    if (g_mpi_used)
      throw ValueError("World: MPI was already finalized in this process and cannot be started again");
    m_impl = detail::make_mpi_world();
    m_mpi = true;
    g_mpi_used = true;
  } else {
    if (require_mpi)
      throw ValueError(std::string("World: MPI was required, but this process was not started by mpirun (") +
                       (detail::built_with_mpi() ? "run it as: mpirun -np N <program>"
                                                 : "and rewind was built without MPI") + ")");
    m_impl = std::make_unique<SelfCommunicator>();
  }
  g_world_alive = true;
}

void World::abort(const std::string& message) {
  m_impl->abort(message);
  std::abort();  // (not reached: every communicator's abort ends the process)
}

World::~World() {
  g_world_alive = false;
  // m_impl's destructor finalizes MPI; leaving main by an exception that nothing caught never gets
  // here (std::terminate runs first, and the MPI world's handler ends the job with the message).
}

}  // namespace rwd
