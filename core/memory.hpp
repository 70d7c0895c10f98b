// rewind/core/memory.hpp — the cache of tensor buffers.
//
// A training step allocates the same buffers every time: the tape's values and adjoints have the same
// shapes from one batch to the next. So when a tensor's values are freed (by a tape clear, or by the
// last handle going away) the buffer is not returned to the system but kept in a per-thread cache, and
// the next tensor of that size class takes it. Once warm, a step of repeated shapes calls no malloc for
// its values and touches no fresh pages.
//
// Sizes are rounded up to classes (multiples of 64 bytes up to 1 KiB, then 8 classes per doubling, so
// at most 12.5% more than asked), so batches and lengths that differ a little share buffers.
//
// What it holds is bounded by what a step reuses, not by how many sizes a program has seen: at most
// twice the working set, the largest rise of the bytes in use above their lowest level over the last
// 2^18 allocations (for a training loop: one step's values and adjoints, above the parameters and
// data that stay). A buffer that does not fit goes back to the system at once, a size class not asked
// for in 2^17 allocations gives its buffers back, and the bound follows the working set down as old
// steps age out. So with shapes that vary from step to step the cache adds at most twice one step's
// working set to the peak, and with repeated shapes it adds nothing (the buffers it holds are those
// the next step takes). The limit (1 GiB by default) caps it in any case.
#pragma once

#include <cstddef>

namespace rwd {

/// What this thread's buffer cache holds and has done.
struct BufferCacheStats {
  std::size_t cached_bytes = 0;       ///< held now, ready for reuse
  std::size_t limit_bytes = 0;        ///< the most it keeps, whatever the working set
  std::size_t hits = 0;               ///< allocations served from the cache
  std::size_t misses = 0;             ///< allocations that went to the system
  std::size_t working_set_bytes = 0;  ///< the working set measured now; cached_bytes <= 2 × this
};

/// The most this thread's cache keeps (default 1 GiB; 0 turns caching off). Buffers beyond it are
/// freed at once. Lowering it frees what no longer fits.
void set_buffer_cache_limit(std::size_t bytes);
/// Frees every buffer this thread's cache holds (the tensors in use are not affected), and measures
/// the working set afresh from now on.
void release_buffer_cache();
/// This thread's cache: what it holds, its limit, its hits and misses.
BufferCacheStats buffer_cache_stats();

}  // namespace rwd
