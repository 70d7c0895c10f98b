// rewind/comm/communicator.hpp — the processes of a data-parallel job and what they say to each other.
//
//     int main() {
//       rwd::World world;                       // MPI_Init here, MPI_Finalize at the end of main
//       std::cout << world.rank() << "/" << world.size() << "\n";
//       …                                       // train/distributed.hpp: DataParallel(model, opt, world)
//     }
//
// Started by `mpirun -np N`, World is MPI_COMM_WORLD (N ranks); started as a plain program it is one
// process (rank 0 of 1) and MPI is never initialized, so the same binary runs either way. A library
// built without MPI (libopenmpi-dev absent when it was configured) still has World; only a process
// that mpirun started then refuses, with an error that says so.
//
// The collectives are MPI's semantics: every rank calls the same ones in the same order. A rank that
// throws past World ends the whole job (MPI_Abort with the message), so no other rank is left waiting
// in a collective forever. This header does not include <mpi.h>.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "../core/dtype.hpp"

namespace rwd {

/// What a data-parallel job's processes do together: every rank calls the same collectives in the
/// same order (MPI's rule). Buffers are raw, contiguous, of float32 or float64 elements.
class Communicator {
 public:
  virtual ~Communicator() = default;

  /// This process's index, 0 … size() − 1.
  virtual int rank() const = 0;
  /// Number of processes in the job.
  virtual int size() const = 0;
  /// True on rank 0, the one that prints and writes files.
  bool is_root() const { return rank() == 0; }

  /// Sums `n` elements at `data` over every rank, in place (blocking). Every rank ends with the same bits.
  virtual void allreduce_sum(void* data, std::size_t n, Dtype dtype) = 0;
  /// Starts allreduce_sum without waiting: `data` must stay alive and untouched until wait_all().
  virtual void start_allreduce_sum(void* data, std::size_t n, Dtype dtype) = 0;
  /// Lets the started reductions advance (MPI moves them on only inside MPI calls).
  virtual void progress() = 0;
  /// Waits for every reduction started since the last wait_all().
  virtual void wait_all() = 0;
  /// Elementwise minimum of `n` integers over every rank, in place (blocking).
  virtual void allreduce_min(std::int64_t* data, std::size_t n) = 0;
  /// Copies `bytes` bytes at `data` from rank `root` to every other rank.
  virtual void broadcast(void* data, std::size_t bytes, int root) = 0;
  /// Waits until every rank has called it.
  virtual void barrier() = 0;
  /// Ends the whole job: prints "rewind: rank R of N: <message>" to stderr, then stops every rank
  /// (MPI_Abort). In a one-process run it prints the same and calls std::abort().
  [[noreturn]] virtual void abort(const std::string& message) = 0;

  /// Sum of one number over every rank.
  double sum(double value);
  /// Mean of one number over every rank.
  double mean(double value) { return sum(value) / size(); }
  /// Rank `root`'s string, on every rank.
  std::string broadcast(const std::string& text, int root);
};

/// One process alone (rank 0 of 1): every collective leaves its data as it is.
class SelfCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void allreduce_sum(void*, std::size_t, Dtype) override {}
  void start_allreduce_sum(void*, std::size_t, Dtype) override {}
  void progress() override {}
  void wait_all() override {}
  void allreduce_min(std::int64_t*, std::size_t) override {}
  using Communicator::broadcast;
  void broadcast(void*, std::size_t, int root) override;
  void barrier() override {}
  [[noreturn]] void abort(const std::string& message) override;
};

/// True when rewind was built with MPI (Open MPI found when it was configured).
bool mpi_available();

/// The number of ranks mpirun (Open MPI, or a PMI launcher: MPICH's, Slurm's) started this process
/// among, read from its environment; 0 when no launcher started it.
int launched_ranks();

/// The processes of this job for as long as the object lives (RAII): MPI_COMM_WORLD, initialized in
/// the constructor and finalized in the destructor, when mpirun started the process; one process
/// otherwise. One World at a time per process (MPI can be initialized once). Throws ValueError when
/// mpirun started the process but rewind was built without MPI, when `require_mpi` is set and no
/// launcher started it, or when a World already exists (or MPI was already finalized).
class World final : public Communicator {
 public:
  /// Joins MPI_COMM_WORLD when mpirun started the process, else one rank; require_mpi: throw instead.
  explicit World(bool require_mpi = false);
  ~World() override;
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  /// True when the ranks talk through MPI (false for the one-process World).
  bool is_mpi() const { return m_mpi; }

  int rank() const override { return m_impl->rank(); }
  int size() const override { return m_impl->size(); }
  void allreduce_sum(void* data, std::size_t n, Dtype dtype) override { m_impl->allreduce_sum(data, n, dtype); }
  void start_allreduce_sum(void* data, std::size_t n, Dtype dtype) override { m_impl->start_allreduce_sum(data, n, dtype); }
  void progress() override { m_impl->progress(); }
  void wait_all() override { m_impl->wait_all(); }
  void allreduce_min(std::int64_t* data, std::size_t n) override { m_impl->allreduce_min(data, n); }
  using Communicator::broadcast;
  void broadcast(void* data, std::size_t bytes, int root) override { m_impl->broadcast(data, bytes, root); }
  void barrier() override { m_impl->barrier(); }
  [[noreturn]] void abort(const std::string& message) override;

 private:
  std::unique_ptr<Communicator> m_impl;
  bool m_mpi = false;
};

}  // namespace rwd
