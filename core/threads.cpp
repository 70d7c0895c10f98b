#include "threads.hpp"

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

void set_num_threads(int n) {
  if (n < 1) throw ValueError("set_num_threads: the thread count must be at least 1, got " + std::to_string(n));
  openblas_set_num_threads(n);
}

int get_num_threads() { return openblas_get_num_threads(); }

}  // namespace rwd
