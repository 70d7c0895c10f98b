#include "threads.hpp"

#include <algorithm>
#include <atomic>
#include <string>

#include "error.hpp"

// OpenBLAS's own (CMakeLists.txt requires OpenBLAS). Strong references: weak ones read as null in a
// program that links none of rewind's products (the linker's --as-needed drops an OpenBLAS that no
// strong reference needs), where set_num_threads then claimed the BLAS was not OpenBLAS.
extern "C" {
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
}

namespace rwd {

namespace {

// The count, 0 until first read or set. core owns it; kernels/pool.cpp reads it (through
// get_num_threads) at each parallel loop and resizes its workers when it changed.
std::atomic<int> g_threads{0};

}  // namespace

// OpenBLAS itself runs on one thread: rewind splits a large product across its own pool
// (kernels/gemm.hpp says why), and OpenBLAS's threads would only wait beside the pool's.
void set_num_threads(int n) {
  if (n < 1) throw ValueError("set_num_threads: the thread count must be at least 1, got " + std::to_string(n));
  // The pool keeps a thread and a cache line a thread: a count past any machine's (a typo, an
  // unsigned −1) would otherwise start thousands of threads, or fail to allocate, at the next loop.
  if (n > kMaxThreads)
    throw ValueError("set_num_threads: the thread count must be at most " + std::to_string(kMaxThreads) + ", got " +
                     std::to_string(n));
  g_threads.store(n, std::memory_order_relaxed);
  if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
}

int get_num_threads() {
  const int n = g_threads.load(std::memory_order_relaxed);
  if (n > 0) return n;
  // OpenBLAS read OPENBLAS_NUM_THREADS / OMP_NUM_THREADS (else counted the cores) when it loaded:
  // its count is the default. A set_num_threads racing with this first read wins.
  int expected = 0;
  const int blas = std::clamp(openblas_get_num_threads(), 1, kMaxThreads);
  if (g_threads.compare_exchange_strong(expected, blas, std::memory_order_relaxed))
    openblas_set_num_threads(1);  // the first read: from now on the pool splits the products
  return g_threads.load(std::memory_order_relaxed);
}

}  // namespace rwd
