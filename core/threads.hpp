// rewind/core/threads.hpp — how many threads rewind uses.
//
// One setting for both kinds of threads rewind runs:
//  - the matrix products are OpenBLAS's sgemm/dgemm, so they run on OpenBLAS's threads;
//  - element-wise ops (the simd loops, maps, broadcasts such as a bias add), sums over axes (a bias
//    gradient), max, strided copies (permute, broadcast_to), slices and their adjoint, concat, stack,
//    gather/scatter, index_select/index_add, casts, and the optimizers' updates (SGD, Adam, AdamW,
//    RMSprop, gradient clipping) split across kernels/pool.hpp's threads, the calling thread taking a
//    share, when they are large enough to gain (small ones, such as every op of a batch-1 step, stay on
//    the calling thread). The results are the same bits at every thread count.
// The tape itself (recording, the backward sweep's order) runs on the calling thread.
//
// The default is OpenBLAS's own: OPENBLAS_NUM_THREADS (or OMP_NUM_THREADS) as set when the program
// starts, else one per core — the same variables NumPy and PyTorch's BLAS read. set_num_threads
// changes both from inside the program, like torch.set_num_threads.
#pragma once

namespace rwd {

/// Threads used by each matrix product and each large element-wise op, sum, copy or optimizer update
/// from now on (n ≥ 1). Throws ValueError for n < 1.
void set_num_threads(int n);
/// Threads rewind uses now (OpenBLAS's default until set_num_threads is called).
int get_num_threads();

}  // namespace rwd
