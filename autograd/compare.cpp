// argmax/argmin and comparisons (constants:
// nothing recorded, like PyTorch's, whose outputs are bool or integer tensors outside autograd).
#include "../core/detail/impl.hpp"
#include "../kernels/argreduce.hpp"
#include "../kernels/elementwise.hpp"
#include "ops.hpp"

namespace rwd {

namespace {

Indices arg_along(const char* op, const Tensor& x, int axis, bool largest) {
  const Shape s = x.shape();
  if (s.ndim() == 0) throw_shape_error(op, {{"input", s}}, "a 0-d tensor has no axis (use the overload without one)");
  return kernels::arg_extreme(op, x, normalize_axis(op, axis, s), largest);
}

std::int64_t arg_all(const char* op, const Tensor& x, bool largest) {
  const Tensor all = detail::make_view(x, 0, Shape{x.numel()}, op);  // a constant view: nothing recorded
  return kernels::arg_extreme(op, all, 0, largest).front();
}

template <class Pred>
Tensor compare(const char* op, const Tensor& a, const Tensor& b, Pred pred) {
  return kernels::zip(op, a, b, [pred](auto x, auto y) { return static_cast<decltype(x)>(pred(x, y) ? 1 : 0); });
}

}  // namespace

std::int64_t argmax(const Tensor& x) { return arg_all("argmax", x, true); }
std::int64_t argmin(const Tensor& x) { return arg_all("argmin", x, false); }
Indices argmax(const Tensor& x, int axis) { return arg_along("argmax", x, axis, true); }
Indices argmin(const Tensor& x, int axis) { return arg_along("argmin", x, axis, false); }

Tensor lt(const Tensor& a, const Tensor& b) { return compare("lt", a, b, [](auto x, auto y) { return x < y; }); }
Tensor le(const Tensor& a, const Tensor& b) { return compare("le", a, b, [](auto x, auto y) { return x <= y; }); }
Tensor gt(const Tensor& a, const Tensor& b) { return compare("gt", a, b, [](auto x, auto y) { return x > y; }); }
Tensor ge(const Tensor& a, const Tensor& b) { return compare("ge", a, b, [](auto x, auto y) { return x >= y; }); }
Tensor eq(const Tensor& a, const Tensor& b) { return compare("eq", a, b, [](auto x, auto y) { return x == y; }); }
Tensor ne(const Tensor& a, const Tensor& b) { return compare("ne", a, b, [](auto x, auto y) { return x != y; }); }

namespace {
Tensor number_like(const Tensor& a, double b) { return Tensor::scalar(b, a.dtype()); }
}  // namespace

Tensor lt(const Tensor& a, double b) { return lt(a, number_like(a, b)); }
Tensor le(const Tensor& a, double b) { return le(a, number_like(a, b)); }
Tensor gt(const Tensor& a, double b) { return gt(a, number_like(a, b)); }
Tensor ge(const Tensor& a, double b) { return ge(a, number_like(a, b)); }
Tensor eq(const Tensor& a, double b) { return eq(a, number_like(a, b)); }
Tensor ne(const Tensor& a, double b) { return ne(a, number_like(a, b)); }

}  // namespace rwd
