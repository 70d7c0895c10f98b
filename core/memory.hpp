// rewind/core/memory.hpp — the cache of tensor buffers.
//
// A training step allocates the same buffers every time: the tape's values and adjoints have the same
// shapes from one batch to the next. So when a tensor's values are freed (by a tape clear, or by the
// last handle going away) the buffer is not returned to the system but kept in a per-thread cache,
// keyed by its size in bytes, and the next tensor of that size takes it. Once warm, a step calls no
// malloc for its values and touches no fresh pages. The cache holds only buffers that were live at
// the same time before, so it does not raise the peak; its limit bounds it anyway.
#pragma once

#include <cstddef>

namespace rwd {

/// What this thread's buffer cache holds and has done.
struct BufferCacheStats {
  std::size_t cached_bytes = 0;  // held now, ready for reuse
  std::size_t limit_bytes = 0;   // the most it keeps
  std::size_t hits = 0;          // allocations served from the cache
  std::size_t misses = 0;        // allocations that went to the system
};

/// The most this thread's cache keeps (default 1 GiB; 0 turns caching off). Buffers beyond it are
/// freed at once. Lowering it frees what no longer fits.
void set_buffer_cache_limit(std::size_t bytes);
/// Frees every buffer this thread's cache holds (the tensors in use are not affected).
void release_buffer_cache();
BufferCacheStats buffer_cache_stats();

}  // namespace rwd
