// y = max_axis x
// dx += broadcast(dy) ⊙ onehot(argmax)   — the first maximal element takes the whole adjoint
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
  const detail::AxisSplit f = detail::split_at(sx, ax);
  Tensor mask;
  Tensor y = detail::map("max", x, [&](const auto& a) {
    using T = typename std::decay_t<decltype(a)>::value_type;
    detail::Array<T> out(detail::xshape(keepdims ? kept : reduced));
    detail::Array<T> onehot = xt::zeros<T>(a.shape());
    for (std::size_t o = 0; o < f.outer; ++o)
      for (std::size_t r = 0; r < f.inner; ++r) {
        std::size_t best = 0;
        const T* base = a.data() + o * f.n * f.inner + r;
        for (std::size_t i = 1; i < f.n; ++i)
          if (base[i * f.inner] > base[best * f.inner]) best = i;
        out.data()[o * f.inner + r] = base[best * f.inner];
        onehot.data()[(o * f.n + best) * f.inner + r] = T(1);
      }
    mask = detail::make_tensor<T>(std::move(onehot));
    return out;
  });
  return record("max", {x}, y, "dx += broadcast(dy)⊙onehot(argmax)", [kept, mask](BackwardContext& c) {
    c.accumulate(0, broadcast_to(reshape(c.grad_out(), kept), c.input(0).shape()) * mask);
  });
}

}  // namespace rwd
