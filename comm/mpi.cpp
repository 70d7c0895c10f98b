// The MPI world (compiled only when rewind is built with MPI: CMakeLists.txt picks this file or
// comm/no_mpi.cpp). Collectives on MPI_COMM_WORLD; the non-blocking sums are MPI_Iallreduce requests
// kept until wait_all().
// C API only: without these, Open MPI's <mpi.h> in C++ drags in its removed C++ bindings (MPI::Comm…),
// which libmpi.so alone does not define.
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstdio>
#include <exception>
#include <iostream>
#include <vector>

#include "../core/error.hpp"
#include "backend.hpp"

namespace rwd::detail {

bool built_with_mpi() { return true; }

namespace {

MPI_Datatype mpi_type(Dtype dtype) { return dtype == Dtype::f32 ? MPI_FLOAT : MPI_DOUBLE; }

void check(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  throw ValueError(std::string("World: ") + what + " failed: " + std::string(text, static_cast<std::size_t>(len)));
}

// MPI counts are ints: a buffer is sent in pieces of at most 2³⁰ elements.
constexpr std::size_t kPiece = std::size_t{1} << 30;

[[noreturn]] void abort_job(const std::string& message) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  // One write per message, flushed before the abort, so mpirun's output shows it whole.
  const std::string line = "rewind: rank " + std::to_string(rank) + " of " + std::to_string(size) + ": " + message + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::abort();  // MPI_Abort does not return; this is for the compiler
}

// An exception nothing caught: end the whole job with its message instead of leaving the other ranks
// in their next collective forever.
[[noreturn]] void terminate_job() {
  std::string message = "terminate called without an active exception";
  if (std::exception_ptr e = std::current_exception()) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      message = std::string("uncaught exception: ") + x.what();
    } catch (...) {
      message = "uncaught exception of unknown type";
    }
  }
  abort_job(message);
}

class MpiWorld final : public Communicator {
 public:
  MpiWorld() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      // FUNNELED: only the thread that made the World calls MPI (the gradient hooks run on the thread
      // that runs the sweep; BLAS's threads never call it).
      int provided = 0;
      check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
      m_owns = true;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &m_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &m_size);
    m_previous_terminate = std::set_terminate(terminate_job);
  }
  ~MpiWorld() override {
    std::set_terminate(m_previous_terminate);
    if (!m_requests.empty()) MPI_Waitall(static_cast<int>(m_requests.size()), m_requests.data(), MPI_STATUSES_IGNORE);
    if (m_owns) MPI_Finalize();
  }

  int rank() const override { return m_rank; }
  int size() const override { return m_size; }

  void allreduce_sum(void* data, std::size_t n, Dtype dtype) override {
    auto* p = static_cast<char*>(data);
    for (std::size_t at = 0; at < n; at += kPiece) {
      const int count = static_cast<int>(std::min(kPiece, n - at));
      check(MPI_Allreduce(MPI_IN_PLACE, p + at * dtype_size(dtype), count, mpi_type(dtype), MPI_SUM, MPI_COMM_WORLD),
            "MPI_Allreduce");
    }
  }
  void start_allreduce_sum(void* data, std::size_t n, Dtype dtype) override {
    auto* p = static_cast<char*>(data);
    for (std::size_t at = 0; at < n; at += kPiece) {
      const int count = static_cast<int>(std::min(kPiece, n - at));
      MPI_Request r;
      check(MPI_Iallreduce(MPI_IN_PLACE, p + at * dtype_size(dtype), count, mpi_type(dtype), MPI_SUM, MPI_COMM_WORLD, &r),
            "MPI_Iallreduce");
      m_requests.push_back(r);
    }
  }
  void progress() override {
    if (m_requests.empty()) return;
    int done = 0;
    check(MPI_Testall(static_cast<int>(m_requests.size()), m_requests.data(), &done, MPI_STATUSES_IGNORE), "MPI_Testall");
  }
  void wait_all() override {
    if (m_requests.empty()) return;
    check(MPI_Waitall(static_cast<int>(m_requests.size()), m_requests.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
    m_requests.clear();
  }
  void allreduce_min(std::int64_t* data, std::size_t n) override {
    for (std::size_t at = 0; at < n; at += kPiece)  // in pieces like the sums: a count above 2³¹−1 would wrap
      check(MPI_Allreduce(MPI_IN_PLACE, data + at, static_cast<int>(std::min(kPiece, n - at)), MPI_INT64_T, MPI_MIN,
                          MPI_COMM_WORLD),
            "MPI_Allreduce");
  }
  void broadcast(void* data, std::size_t bytes, int root) override {
    if (root < 0 || root >= m_size)
      throw ValueError("Communicator::broadcast: root rank " + std::to_string(root) + " does not exist (" +
                       std::to_string(m_size) + " ranks)");
    auto* p = static_cast<char*>(data);
    for (std::size_t at = 0; at < bytes; at += kPiece)
      check(MPI_Bcast(p + at, static_cast<int>(std::min(kPiece, bytes - at)), MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
  }
  void barrier() override { check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }
  [[noreturn]] void abort(const std::string& message) override { abort_job(message); }

 private:
  int m_rank = 0, m_size = 1;
  bool m_owns = false;
  std::vector<MPI_Request> m_requests;
  std::terminate_handler m_previous_terminate = nullptr;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_world() { return std::make_unique<MpiWorld>(); }

}  // namespace rwd::detail
