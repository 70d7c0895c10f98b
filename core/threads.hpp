// rewind/core/threads.hpp — how many threads rewind uses.
//
// One setting for everything rewind splits across threads, on one pool (kernels/pool.hpp):
//  - matrix products of at least ~1M multiply-adds, in blocks of rows (kernels/gemm.hpp), each block
//    one OpenBLAS call on one thread — rewind sets OpenBLAS itself to one thread (its own threads split
//    a recurrent step's small products poorly and wait beside the pool's; measured in bench/PROFILE.md),
//    so a program that also calls OpenBLAS directly gets one thread there after rewind's first product;
//  - element-wise ops (the simd loops, maps, broadcasts such as a bias add), sums over axes (a bias
//    gradient), max, strided copies (permute, broadcast_to), slices and their adjoint, concat, stack,
//    gather/scatter, index_select/index_add, casts, and the optimizers' updates (SGD, Adam, AdamW,
//    RMSprop, gradient clipping), the calling thread taking a share, when they are large enough to
//    gain (small ones, such as every op of a batch-1 step, stay on the calling thread). Their results
//    are the same bits at every thread count; a split product's are the same bits from run to run and
//    within float rounding across thread counts (kernels/gemm.hpp says why).
// The tape itself (recording, the backward sweep's order) runs on the calling thread.
//
// The default is OpenBLAS's own count as it loaded: OPENBLAS_NUM_THREADS (or OMP_NUM_THREADS) as set
// when the program starts, else one per core — the same variables NumPy and PyTorch's BLAS read.
// set_num_threads changes it from inside the program, like torch.set_num_threads.
#pragma once

namespace rwd {

/// Threads used by each matrix product and each large element-wise op, sum, copy or optimizer update
/// from now on (n ≥ 1). Throws ValueError for n < 1.
void set_num_threads(int n);
/// Threads rewind uses now (OpenBLAS's default count until set_num_threads is called; reading it the
/// first time sets OpenBLAS to one thread).
int get_num_threads();

}  // namespace rwd
