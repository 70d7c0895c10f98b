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
#include <cstddef>
#include <iterator>
#include <memory>
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
  SharedBuffer(SharedBuffer&& other) noexcept
      : m_block(std::move(other.m_block)),
        m_data(std::exchange(other.m_data, nullptr)),
        m_size(std::exchange(other.m_size, 0)),
        m_view(std::exchange(other.m_view, false)) {}
  SharedBuffer& operator=(const SharedBuffer& other) {
    if (this != &other) SharedBuffer(other).swap(*this);
    return *this;
  }
  SharedBuffer& operator=(SharedBuffer&& other) noexcept {
    SharedBuffer(std::move(other)).swap(*this);
    return *this;
  }

  /// `n` elements from `offset` of this run, sharing its block (a view).
  SharedBuffer share(size_type offset, size_type n) const {
    SharedBuffer v;
    v.m_block = m_block;
    v.m_data = m_data + offset;
    v.m_size = n;
    v.m_view = true;
    return v;
  }
  /// How many containers hold this block (1: no other tensor reads these values).
  long owners() const noexcept { return m_block.use_count(); }
  /// True if this run was made by share(): a view of another tensor's values.
  bool is_view() const noexcept { return m_view; }
  /// The block this run lies in (null for an empty array never given one): equal for a view and its base.
  const void* block() const noexcept { return m_block.get(); }

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
    std::swap(m_block, other.m_block);
    std::swap(m_data, other.m_data);
    std::swap(m_size, other.m_size);
    std::swap(m_view, other.m_view);
  }

 private:
  // The values' block and its reference count come from the buffer cache, like the values did when
  // each array owned them (a 0-element array still takes a block, as xtensor's uvector did).
  struct Release {
    size_type n;
    void operator()(T* p) const noexcept { allocator_type().deallocate(p, n); }
  };
  void allocate(size_type n) {
    T* p = allocator_type().allocate(n);
    m_block = std::shared_ptr<T>(p, Release{n}, allocator_type());  // frees p if this throws
    m_data = p;
    m_size = n;
    m_view = false;
  }

  std::shared_ptr<T> m_block;
  T* m_data = nullptr;
  size_type m_size = 0;
  bool m_view = false;
};

template <class T>
void swap(SharedBuffer<T>& a, SharedBuffer<T>& b) noexcept {
  a.swap(b);
}

}  // namespace rwd::detail
