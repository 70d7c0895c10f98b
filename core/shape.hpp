// rewind/core/shape.hpp — a tensor's shape: up to 8 dimensions stored inline (no allocation).
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

namespace rwd {

class Shape;
namespace detail {
template <class A>
Shape shape_of(const A& a);
}

/// The dimensions of a tensor, row-major. `Shape{}` is a scalar (0-d), `Shape{5}` a vector.
///
/// Every Shape can be indexed: the product of its dimensions, a zero dimension counted as 1, is at
/// most `max_extent`, so every element count, every stride and every byte offset (8 bytes an element
/// at most) fits in a signed 64-bit integer. A zero does not excuse the other dimensions because the
/// strides of the axes after it are still computed (xtensor's strides are signed). Each constructor
/// and push_back checks this and throws ShapeError naming the shape; a dimension changed through
/// operator[] or begin() is checked again by numel() and by everything that makes a tensor.
class Shape {
 public:
  /// The most dimensions a Shape holds (stored inline); more is a ShapeError.
  static constexpr std::size_t max_dims = 8;
  /// The largest product of dimensions (zeros counted as 1): PTRDIFF_MAX / 8, about 1.15e18.
  static constexpr std::size_t max_extent = static_cast<std::size_t>(PTRDIFF_MAX) / 8;

  Shape() = default;
  /// `Shape{3, 4}`; throws ShapeError past max_dims or max_extent.
  Shape(std::initializer_list<std::size_t> dims);
  /// The first n entries of `dims`.
  Shape(const std::size_t* dims, std::size_t n) {
    if (n > max_dims) throw_too_many();
    for (std::size_t i = 0; i < n; ++i) m_dims[i] = dims[i];
    m_ndim = n;
    check_size();
  }
  /// The dimensions in [first, last), each cast to std::size_t (any integer range, e.g. an xtensor shape).
  template <class It>
  Shape(It first, It last) {
    for (; first != last; ++first) {
      if (m_ndim == max_dims) throw_too_many();
      m_dims[m_ndim++] = static_cast<std::size_t>(*first);
    }
    check_size();
  }

  /// Throws ShapeError ("shape (…): …", after "`op`: " if given) unless the shape can be indexed (see
  /// the class comment). Inline and branch-light: Tensor::shape() builds a Shape on every op.
  void check_size(const char* op = nullptr) const {
    std::size_t extent = 1;
    for (std::size_t i = 0; i < m_ndim; ++i) {
      const std::size_t d = m_dims[i] | (m_dims[i] == 0);
      if (__builtin_mul_overflow(extent, d, &extent) || extent > max_extent) throw_too_large(op);
    }
  }

  /// Number of dimensions.
  std::size_t ndim() const { return m_ndim; }
  /// Number of dimensions, as a container's size (the same as ndim(), not numel()).
  std::size_t size() const { return m_ndim; }
  /// True for a scalar's shape (no dimensions).
  bool empty() const { return m_ndim == 0; }
  /// Product of the dimensions (1 for a scalar); checks the shape first (check_size).
  std::size_t numel() const;

  /// Dimension i, unchecked (i < ndim() is the caller's); see dim() for a checked, negative axis.
  std::size_t operator[](std::size_t i) const { return m_dims[i]; }
  /// Dimension i, writable and unchecked; a change is checked again by numel() (see the class comment).
  std::size_t& operator[](std::size_t i) { return m_dims[i]; }
  /// Dimension `axis`, negative counting from the end; throws if out of range.
  std::size_t dim(int axis) const;

  /// The first dimension (a range over the ndim() dimensions, for range-for and std algorithms).
  const std::size_t* begin() const { return m_dims; }
  /// One past the last dimension.
  const std::size_t* end() const { return m_dims + m_ndim; }
  /// The first dimension, writable (a change is checked again by numel()).
  std::size_t* begin() { return m_dims; }
  /// One past the last dimension (writable).
  std::size_t* end() { return m_dims + m_ndim; }

  /// Appends a dimension; throws ShapeError (and leaves the shape as it was) if it would not fit.
  void push_back(std::size_t d) {
    if (m_ndim == max_dims) throw_too_many();
    m_dims[m_ndim++] = d;
    try {
      check_size();
    } catch (...) {
      --m_ndim;
      throw;
    }
  }

  /// Same number of dimensions and the same dimensions: (3, 1) ≠ (3,).
  bool operator==(const Shape& other) const {
    if (m_ndim != other.m_ndim) return false;
    for (std::size_t i = 0; i < m_ndim; ++i)
      if (m_dims[i] != other.m_dims[i]) return false;
    return true;
  }
  /// !(a == b).
  bool operator!=(const Shape& other) const { return !(*this == other); }

  /// "(3, 4)", "(5,)" for one dimension, "()" for a scalar — NumPy's spelling.
  std::string str() const;

 private:
  // The shape of an array that exists was checked when the array was made: Tensor::shape(), called
  // several times by every op, reads it without checking it again.
  template <class A>
  friend Shape detail::shape_of(const A& a);
  struct Checked {};
  Shape(Checked, const std::size_t* dims, std::size_t n) {
    if (n > max_dims) throw_too_many();
    for (std::size_t i = 0; i < n; ++i) m_dims[i] = dims[i];
    m_ndim = n;
  }

  [[noreturn]] static void throw_too_many();
  [[noreturn]] void throw_too_large(const char* op) const;
  std::size_t m_dims[max_dims] = {};
  std::size_t m_ndim = 0;
};

/// NumPy broadcasting of two shapes; throws ShapeError naming `op`, both shapes and the rule.
Shape broadcast_shapes(const char* op, const Shape& lhs, const Shape& rhs);

/// Turns a possibly negative axis into an index in [0, ndim); throws ShapeError naming `op`.
std::size_t normalize_axis(const char* op, int axis, const Shape& shape);

}  // namespace rwd
