#include "shape.hpp"

#include <algorithm>

#include "dtype.hpp"
#include "error.hpp"

namespace rwd {

Shape::Shape(std::initializer_list<std::size_t> dims) {
  for (std::size_t d : dims) push_back(d);
}

std::size_t Shape::numel() const {
  std::size_t n = 1;
  for (std::size_t d : *this) n *= d;
  return n;
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
