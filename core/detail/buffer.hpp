// rewind/core/detail/buffer.hpp — the allocator behind every tensor's values (library-internal).
// Freed buffers wait in a per-thread cache keyed by size class (see core/memory.hpp), so a training
// loop that repeats its shapes stops calling malloc, and faulting in fresh pages, after one step.
#pragma once

#include <cstddef>

namespace rwd::detail {

/// At least `bytes` bytes, 64-byte aligned: from this thread's cache when it holds that size class.
/// Throws MemoryError naming the bytes if the system refuses them.
void* buffer_allocate(std::size_t bytes);
/// Gives a buffer back: into this thread's cache, or to the system when the cache is full.
void buffer_release(void* p, std::size_t bytes) noexcept;

/// A standard allocator over buffer_allocate/buffer_release (stateless: all instances are equal).
template <class T>
struct BufferAllocator {
  using value_type = T;
  BufferAllocator() noexcept = default;
  template <class U>
  BufferAllocator(const BufferAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(buffer_allocate(n * sizeof(T))); }
  void deallocate(T* p, std::size_t n) noexcept { buffer_release(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const BufferAllocator<U>&) const noexcept { return true; }
  template <class U>
  bool operator!=(const BufferAllocator<U>&) const noexcept { return false; }
};

}  // namespace rwd::detail
