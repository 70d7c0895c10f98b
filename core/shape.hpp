// rewind/core/shape.hpp — a tensor's shape: up to 8 dimensions stored inline (no allocation).
#pragma once

#include <cstddef>
#include <initializer_list>
#include <string>

namespace rwd {

/// The dimensions of a tensor, row-major. `Shape{}` is a scalar (0-d), `Shape{5}` a vector.
class Shape {
 public:
  static constexpr std::size_t max_dims = 8;

  Shape() = default;
  Shape(std::initializer_list<std::size_t> dims);
  /// The first n entries of `dims`.
  Shape(const std::size_t* dims, std::size_t n) {
    if (n > max_dims) throw_too_many();
    for (std::size_t i = 0; i < n; ++i) m_dims[i] = dims[i];
    m_ndim = n;
  }
  template <class It>
  Shape(It first, It last) {
    for (; first != last; ++first) push_back(static_cast<std::size_t>(*first));
  }

  /// Number of dimensions.
  std::size_t ndim() const { return m_ndim; }
  std::size_t size() const { return m_ndim; }
  bool empty() const { return m_ndim == 0; }
  /// Product of the dimensions (1 for a scalar).
  std::size_t numel() const;

  std::size_t operator[](std::size_t i) const { return m_dims[i]; }
  std::size_t& operator[](std::size_t i) { return m_dims[i]; }
  /// Dimension `axis`, negative counting from the end; throws if out of range.
  std::size_t dim(int axis) const;

  const std::size_t* begin() const { return m_dims; }
  const std::size_t* end() const { return m_dims + m_ndim; }
  std::size_t* begin() { return m_dims; }
  std::size_t* end() { return m_dims + m_ndim; }

  void push_back(std::size_t d) {
    if (m_ndim == max_dims) throw_too_many();
    m_dims[m_ndim++] = d;
  }

  bool operator==(const Shape& other) const {
    if (m_ndim != other.m_ndim) return false;
    for (std::size_t i = 0; i < m_ndim; ++i)
      if (m_dims[i] != other.m_dims[i]) return false;
    return true;
  }
  bool operator!=(const Shape& other) const { return !(*this == other); }

  /// "(3, 4)", "(5,)" for one dimension, "()" for a scalar — NumPy's spelling.
  std::string str() const;

 private:
  [[noreturn]] static void throw_too_many();
  std::size_t m_dims[max_dims] = {};
  std::size_t m_ndim = 0;
};

/// NumPy broadcasting of two shapes; throws ShapeError naming `op`, both shapes and the rule.
Shape broadcast_shapes(const char* op, const Shape& lhs, const Shape& rhs);

/// Turns a possibly negative axis into an index in [0, ndim); throws ShapeError naming `op`.
std::size_t normalize_axis(const char* op, int axis, const Shape& shape);

}  // namespace rwd
