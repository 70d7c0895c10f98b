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

#include <cstdint>

namespace rwd {

/// The most threads set_num_threads takes.
inline constexpr int kMaxThreads = 1024;
/// Threads used by each matrix product and each large element-wise op, sum, copy or optimizer update
/// from now on (1 ≤ n ≤ kMaxThreads; more than the machine's cores is allowed, and slower). Throws
/// ValueError for n outside that range.
void set_num_threads(int n);
/// Threads rewind uses now (OpenBLAS's default count until set_num_threads is called; reading it the
/// first time sets OpenBLAS to one thread).
int get_num_threads();

/// Where the threads' time went, summed over the calls made while counting was on (see
/// set_thread_profiling): enough to tell, at a given thread count, whether a step's time is in the
/// matrix products, in the loops split across the pool, or elsewhere (the tape, the loops too small to
/// split), and what splitting cost. `rewind_bench --profile` prints it for each phase of a training step.
struct ThreadProfile {
  std::uint64_t products = 0;        ///< matrix products past the tiny cut (m·n·k > 512)
  std::uint64_t products_split = 0;  ///< of those, the ones split across the pool
  double products_ms = 0;            ///< their wall time on the threads that called them
  std::uint64_t loops_split = 0;     ///< other loops split across the pool (element-wise, sums, copies, updates)
  double loops_split_ms = 0;         ///< their wall time on the threads that called them
  double chunks_ms = 0;     ///< time every thread spent running the chunks of split work (products and loops)
  double join_wait_ms = 0;  ///< time the callers of split work waited for workers after their own chunks ran out
};

/// Starts (true) or stops counting (off by default: then nothing is timed). Counting reads the clock
/// around each large product and split loop, and each chunk: well under 1% of a recurrent step.
void set_thread_profiling(bool on);
/// The counts so far (zeros when counting never ran).
ThreadProfile thread_profile();
/// Zeros the counts.
void reset_thread_profile();

}  // namespace rwd
