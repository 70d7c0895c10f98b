// rewind/core/threads.hpp — how many threads the matrix products use.
//
// rewind's matrix products are OpenBLAS's sgemm/dgemm, so their threads are OpenBLAS's: by default
// OPENBLAS_NUM_THREADS (or OMP_NUM_THREADS) as set when the program starts, else one per core — the
// same variables NumPy and PyTorch's BLAS read. set_num_threads changes it from inside the program,
// like torch.set_num_threads. Element-wise ops and the tape run on the calling thread.
#pragma once

namespace rwd {

/// Threads used by each matrix product from now on (n ≥ 1). Throws ValueError for n < 1.
void set_num_threads(int n);
/// Threads a matrix product uses now.
int get_num_threads();

}  // namespace rwd
