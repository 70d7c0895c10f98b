#include "threads.hpp"

#include <string>

#include "error.hpp"

// Weak: rewind links whatever BLAS CMake found; these exist only when it is OpenBLAS.
extern "C" {
void openblas_set_num_threads(int num_threads) __attribute__((weak));
int openblas_get_num_threads(void) __attribute__((weak));
}

namespace rwd {

void set_num_threads(int n) {
  if (n < 1) throw ValueError("set_num_threads: the thread count must be at least 1, got " + std::to_string(n));
  if (!openblas_set_num_threads)
    throw Error("set_num_threads: the BLAS rewind is linked with is not OpenBLAS; set its own thread variable "
                "(e.g. OMP_NUM_THREADS) before the program starts");
  openblas_set_num_threads(n);
}

int get_num_threads() { return openblas_get_num_threads ? openblas_get_num_threads() : 1; }

}  // namespace rwd
