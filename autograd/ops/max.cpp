// y = max_axis x
// backward: prim::max (autograd/primitives.hpp) — the first maximal element takes the whole adjoint,
// the others 0
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
  // Selected, not broadcast(dy)⊙mask: an infinite or NaN dy gives 0 to the other elements of its lane
  // (PyTorch scatters dy to the argmax), not inf·0 = NaN. where() broadcasts dy and records under
  // create_graph.
  return record(prim::max, {x}, y, [kept, mask](BackwardContext& c) {
    const Tensor& dy = c.grad_out();
    c.accumulate(0, where(mask, reshape(dy, kept), detail::scalar_like(dy, 0.0)));
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
    // dy / k at the ties and 0 elsewhere, selected (an infinite or NaN dy reaches only the ties, as
    // PyTorch's evenly_distribute_backward), not tie⊙(dy / k)
    const Tensor& dy = c.grad_out();
    c.accumulate(0, where(tie, dy / k, detail::scalar_like(dy, 0.0)));
  });
}

}  // namespace

Tensor max(const Tensor& x) { return extreme_all(x, true); }
Tensor min(const Tensor& x) { return extreme_all(x, false); }

}  // namespace rwd
