#include "shape.hpp"

#include <algorithm>

#include "dtype.hpp"
#include "error.hpp"

namespace rwd {

Shape::Shape(std::initializer_list<std::size_t> dims) : Shape(dims.begin(), dims.end()) {}

std::size_t Shape::numel() const {
  check_size();  // operator[] may have changed a dimension since the shape was made
  std::size_t n = 1;
  for (std::size_t d : *this) n *= d;
  return n;
}

namespace {

// The exact product of `dims` (zeros counted as 1) in decimal, however many digits it takes: a
// message about an overflow should not print a wrapped number.
std::string exact_extent(const std::size_t* dims, std::size_t n) {
  std::string digits = "1";  // least significant first
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned __int128 d = dims[i] ? dims[i] : 1;
    unsigned __int128 carry = 0;
    for (char& c : digits) {
      const unsigned __int128 v = static_cast<unsigned __int128>(c - '0') * d + carry;
      c = static_cast<char>('0' + static_cast<int>(v % 10));
      carry = v / 10;
    }
    for (; carry; carry /= 10) digits += static_cast<char>('0' + static_cast<int>(carry % 10));
  }
  return {digits.rbegin(), digits.rend()};
}

}  // namespace

void Shape::throw_too_large(const char* op) const {
  const bool has_zero = std::find(begin(), end(), std::size_t{0}) != end();
  const std::string product = exact_extent(m_dims, m_ndim);
  const std::string limit = std::to_string(max_extent);
  throw ShapeError((op ? std::string(op) + ": " : std::string()) + "shape " + str() + ": " +
                   (has_zero ? "its nonzero dimensions multiply to " + product + ", more than " + limit +
                                   ": the strides of the axes after the zero would overflow"
                             : product + " elements overflow: a tensor holds at most " + limit) +
                   " (every byte offset, at 8 bytes an element, must fit in a signed 64-bit index)");
}

std::size_t Shape::dim(int axis) const { return m_dims[normalize_axis("shape", axis, *this)]; }

void Shape::throw_too_many() {
  throw ShapeError("shape: more than " + std::to_string(max_dims) + " dimensions are not supported");
}

std::string Shape::str() const {
  std::string s = "(";
  for (std::size_t i = 0; i < m_ndim; ++i) {
    if (i) s += ", ";
    s += std::to_string(m_dims[i]);
  }
  if (m_ndim == 1) s += ",";
  return s + ")";
}

Shape broadcast_shapes(const char* op, const Shape& lhs, const Shape& rhs) {
  if (lhs == rhs) return lhs;
  const std::size_t n = std::max(lhs.ndim(), rhs.ndim());
  Shape out;
  for (std::size_t i = 0; i < n; ++i) out.push_back(1);
  // Align from the right, as NumPy does.
  for (std::size_t k = 1; k <= n; ++k) {
    const std::size_t a = k <= lhs.ndim() ? lhs[lhs.ndim() - k] : 1;
    const std::size_t b = k <= rhs.ndim() ? rhs[rhs.ndim() - k] : 1;
    if (a != b && a != 1 && b != 1)
      throw_shape_error(op, {{"lhs", lhs}, {"rhs", rhs}},
                        "cannot broadcast: dimension -" + std::to_string(k) + " is " + std::to_string(a) +
                            " in lhs and " + std::to_string(b) + " in rhs (sizes must match or one must be 1)");
    out[n - k] = a == 1 ? b : a;
  }
  // Each operand fits, but their broadcast may not: (2^40, 1) with (1, 2^40).
  try {
    out.check_size();
  } catch (const ShapeError& e) {
    throw_shape_error(op, {{"lhs", lhs}, {"rhs", rhs}}, std::string("cannot broadcast: ") + e.what());
  }
  return out;
}

std::size_t normalize_axis(const char* op, int axis, const Shape& shape) {
  const int n = static_cast<int>(shape.ndim());
  if (axis < -n || axis >= n)
    throw_shape_error(op, {{"input", shape}},
                      "axis " + std::to_string(axis) + " is out of range for " + std::to_string(n) +
                          " dimension" + (n == 1 ? "" : "s"));
  return static_cast<std::size_t>(axis < 0 ? axis + n : axis);
}

const char* dtype_name(Dtype dtype) { return dtype == Dtype::f32 ? "float32" : "float64"; }

std::string shape_message(const char* op, std::initializer_list<Operand> operands, const std::string& rule) {
  std::string s = op;
  s += ": ";
  bool first = true;
  for (const Operand& o : operands) {
    if (!first) s += " and ";
    first = false;
    s += o.name;
    s += ' ';
    s += o.shape.str();
  }
  return s + ": " + rule;
}

void throw_shape_error(const char* op, std::initializer_list<Operand> operands, const std::string& rule) {
  throw ShapeError(shape_message(op, operands, rule));
}

}  // namespace rwd
