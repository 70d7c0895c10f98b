// y = max_axis x
// backward: prim::max (autograd/primitives.hpp) — the first maximal element takes the whole adjoint
//
// y = max x, min x over every element (0-d)
// backward: prim::max_all, prim::min_all — the k elements equal to y (the k NaNs when y is NaN) each
// take dy / k, as PyTorch's torch.max(x) and torch.min(x) (its max(x, dim), like max(x, axis) here,
// gives it all to one element)
#include <cmath>

#include "op.hpp"

namespace rwd {

Tensor max(const Tensor& x, int axis, bool keepdims) {
  const Shape sx = x.shape();
  const std::size_t ax = normalize_axis("max", axis, sx);
  if (sx[ax] == 0) throw_shape_error("max", {{"input", sx}}, "cannot take the max over an empty axis");
  Shape kept = sx, reduced;
  kept[ax] = 1;
  for (std::size_t d = 0; d < sx.ndim(); ++d)
    if (d != ax) reduced.push_back(sx[d]);
  Tensor mask;  // the one-hot of each lane's first maximum, x's shape
  Tensor y = kernels::max("max", x, ax, keepdims ? kept : reduced, mask);
  return record(prim::max, {x}, y, [kept, mask](BackwardContext& c) {
    c.accumulate(0, broadcast_to(reshape(c.grad_out(), kept), c.input(0).shape()) * mask);
  });
}

namespace {

Tensor extreme_all(const Tensor& x, bool largest) {
  const char* op = largest ? "max" : "min";
  const Shape sx = x.shape();
  if (x.numel() == 0) throw_shape_error(op, {{"input", sx}}, std::string("cannot take the ") + op + " of an empty tensor");
  // The value: max along the one axis of a constant flat view (min: of −x, negated back); a NaN wins.
  const Tensor all = detail::make_view(x, 0, Shape{x.numel()}, op);
  auto neg = [](auto v) { return -v; };
  Tensor onehot;
  Tensor y = largest ? kernels::max(op, all, 0, Shape{}, onehot)
                     : kernels::map(op, kernels::max(op, kernels::map(op, all, neg), 0, Shape{}, onehot), neg);
  // backward: the elements that share the adjoint, and how many — found when a sweep needs them.
  return record(largest ? prim::max_all : prim::min_all, {x}, y, [op](BackwardContext& c) {
    const double m = c.output().item();
    const bool nan = std::isnan(m);
    const Tensor tie =
        kernels::mask(op, c.input(0), [m, nan](auto v) { return nan ? v != v : v == static_cast<decltype(v)>(m); });
    const double k = sum(tie).item();
    c.accumulate(0, tie * (c.grad_out() / k));
  });
}

}  // namespace

Tensor max(const Tensor& x) { return extreme_all(x, true); }
Tensor min(const Tensor& x) { return extreme_all(x, false); }

}  // namespace rwd
