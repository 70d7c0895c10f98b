// rewind/core/detail/storage.hpp — the element container behind every tensor: a run of values inside
// a block that several tensors may share (library-internal).
//
// A view (reshape, squeeze/unsqueeze, a slice along the leading axis) is a contiguous run of the
// elements of the tensor it views, in the same row-major order, so it needs no strides of its own:
// only the block, where its run starts, and its own shape (kept by the array around this container).
// The block goes back to the buffer cache when the last tensor holding it lets go — a tape clear that
// releases the base of a live view drops the base's hold, not the values the view reads.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <iterator>
#include <memory>
#include <new>
#include <utility>

#include "buffer.hpp"

namespace rwd::detail {

/// The storage container of a tensor's array (xtensor's `EC`): [data(), data() + size()) inside a
/// block from the buffer cache, shared with the other tensors that view it.
///
/// Copying one copies the values into a fresh block (an array copy is a copy of the values, as it was
/// when every array owned its values); a view is made only by share(). resize to another size leaves
/// the block for a fresh one (xtensor resizes only to build an array of a new shape), so nothing but
/// an explicit element write ever reaches a shared block.
template <class T>
class SharedBuffer {
 public:
  using allocator_type = BufferAllocator<T>;
  using value_type = T;
  using reference = T&;
  using const_reference = const T&;
  using pointer = T*;
  using const_pointer = const T*;
  using size_type = std::size_t;
  using difference_type = std::ptrdiff_t;
  using iterator = T*;
  using const_iterator = const T*;
  using reverse_iterator = std::reverse_iterator<iterator>;
  using const_reverse_iterator = std::reverse_iterator<const_iterator>;

  SharedBuffer() noexcept = default;
  explicit SharedBuffer(size_type n) { allocate(n); }
  SharedBuffer(size_type n, const T& v) {
    allocate(n);
    std::fill_n(m_data, n, v);
  }
  SharedBuffer(const SharedBuffer& other) {
    allocate(other.m_size);
    std::copy_n(other.m_data, other.m_size, m_data);
  }
  SharedBuffer(SharedBuffer&& other) noexcept { steal(other); }
  SharedBuffer& operator=(const SharedBuffer& other) {
    if (this != &other) SharedBuffer(other).swap(*this);
    return *this;
  }
  SharedBuffer& operator=(SharedBuffer&& other) noexcept {
    SharedBuffer(std::move(other)).swap(*this);
    return *this;
  }
  ~SharedBuffer() { drop(); }

  /// `n` elements from `offset` of this run, sharing its block (a view).
  SharedBuffer share(size_type offset, size_type n) const {
    SharedBuffer v;
    v.m_block.store(hold(), std::memory_order_relaxed);
    v.m_data = m_data + offset;
    v.m_size = n;
    v.m_view = true;
    return v;
  }
  /// How many containers hold this run's block (1: no other tensor reads these values).
  long owners() const noexcept {
    const Block* b = m_block.load(std::memory_order_acquire);
    return b ? b->refs.load(std::memory_order_acquire) : 1;
  }
  /// True if this run was made by share(): a view of another tensor's values.
  bool is_view() const noexcept { return m_view; }
  /// Where this run's block starts (null for an empty array never given one): equal for a view and its base.
  const void* block() const noexcept {
    const Block* b = m_block.load(std::memory_order_acquire);
    return b ? static_cast<const void*>(b->data) : static_cast<const void*>(m_data);
  }

  allocator_type get_allocator() const noexcept { return {}; }
  bool empty() const noexcept { return m_size == 0; }
  size_type size() const noexcept { return m_size; }
  size_type max_size() const noexcept { return static_cast<size_type>(-1) / sizeof(T); }
  void resize(size_type n) {
    if (n != m_size) SharedBuffer(n).swap(*this);
  }
  void clear() { SharedBuffer().swap(*this); }

  reference operator[](size_type i) { return m_data[i]; }
  const_reference operator[](size_type i) const { return m_data[i]; }
  reference front() { return m_data[0]; }
  const_reference front() const { return m_data[0]; }
  reference back() { return m_data[m_size - 1]; }
  const_reference back() const { return m_data[m_size - 1]; }

  pointer data() noexcept { return m_data; }
  const_pointer data() const noexcept { return m_data; }
  iterator begin() noexcept { return m_data; }
  iterator end() noexcept { return m_data + m_size; }
  const_iterator begin() const noexcept { return m_data; }
  const_iterator end() const noexcept { return m_data + m_size; }
  const_iterator cbegin() const noexcept { return m_data; }
  const_iterator cend() const noexcept { return m_data + m_size; }
  reverse_iterator rbegin() noexcept { return reverse_iterator(end()); }
  reverse_iterator rend() noexcept { return reverse_iterator(begin()); }
  const_reverse_iterator rbegin() const noexcept { return const_reverse_iterator(end()); }
  const_reverse_iterator rend() const noexcept { return const_reverse_iterator(begin()); }
  const_reverse_iterator crbegin() const noexcept { return rbegin(); }
  const_reverse_iterator crend() const noexcept { return rend(); }

  void swap(SharedBuffer& other) noexcept {
    Block* b = m_block.load(std::memory_order_relaxed);
    m_block.store(other.m_block.load(std::memory_order_relaxed), std::memory_order_relaxed);
    other.m_block.store(b, std::memory_order_relaxed);
    std::swap(m_data, other.m_data);
    std::swap(m_size, other.m_size);
    std::swap(m_view, other.m_view);
  }

 private:
  // The reference count of a block that views share. A tensor that was never viewed has none: it
  // frees its values itself (most tensors: a count made for each would cost an allocation and an
  // atomic for nothing). The first view makes one, counting the base and itself; from then on the
  // block is freed when the count falls to 0. Made with a compare-and-swap, so that two threads
  // viewing one base at once agree on one count.
  struct Block {
    std::atomic<long> refs;
    T* data;
    size_type n;
  };
  using BlockAllocator = BufferAllocator<Block>;

  void allocate(size_type n) {
    m_data = allocator_type().allocate(n);  // a 0-element array still takes a buffer, as uvector did
    m_size = n;
  }
  // One more hold on this run's block, made on the first view.
  Block* hold() const {
    Block* b = m_block.load(std::memory_order_acquire);
    if (!b) {
      if (!m_data) return nullptr;  // an empty array never given a buffer: nothing to share
      Block* fresh = BlockAllocator().allocate(1);
      new (fresh) Block{{1}, m_data, m_size};  // (not a view: its run is its whole buffer)
      if (m_block.compare_exchange_strong(b, fresh, std::memory_order_acq_rel)) {
        b = fresh;
      } else {
        fresh->~Block();
        BlockAllocator().deallocate(fresh, 1);
      }
    }
    b->refs.fetch_add(1, std::memory_order_relaxed);
    return b;
  }
  void release() noexcept {
    drop();
    m_block.store(nullptr, std::memory_order_relaxed);
    m_data = nullptr;
    m_size = 0;
    m_view = false;
  }
  // Lets go of the values (the block's hold, or the buffer itself), leaving the members as they were.
  void drop() noexcept {
    if (Block* b = m_block.load(std::memory_order_relaxed)) {
      if (b->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        allocator_type().deallocate(b->data, b->n);
        b->~Block();
        BlockAllocator().deallocate(b, 1);
      }
    } else if (m_data) {  // never viewed: a base, its run its whole buffer
      allocator_type().deallocate(m_data, m_size);
    }
  }
  void steal(SharedBuffer& other) noexcept {
    m_block.store(other.m_block.exchange(nullptr, std::memory_order_relaxed), std::memory_order_relaxed);
    m_data = std::exchange(other.m_data, nullptr);
    m_size = std::exchange(other.m_size, 0);
    m_view = std::exchange(other.m_view, false);
  }

  // A view always has a block; a base has one once viewed, and until then its run is its buffer.
  mutable std::atomic<Block*> m_block{nullptr};
  T* m_data = nullptr;  // the run: [m_data, m_data + m_size)
  size_type m_size = 0;
  bool m_view = false;
};

template <class T>
void swap(SharedBuffer<T>& a, SharedBuffer<T>& b) noexcept {
  a.swap(b);
}

}  // namespace rwd::detail
