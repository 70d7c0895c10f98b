// y = x[..., start:stop:step, ...] along `axis`
// dx += unslice(dy)   — dy placed back at the sliced positions, zeros elsewhere
//
// unslice is slice's adjoint and a primitive of its own, so that double backward stays on the tape:
// g' = unslice(g)   dg += slice(dg')
#include "op.hpp"

namespace rwd {

namespace {

std::size_t slice_count(std::size_t start, std::size_t stop, std::size_t step) {
  return stop > start ? (stop - start + step - 1) / step : 0;
}

void check_slice(const char* op, const Shape& s, std::size_t axis, std::size_t start, std::size_t stop,
                 std::size_t step) {
  if (step == 0) throw_shape_error(op, {{"input", s}}, "step must be at least 1");
  if (start > stop || stop > s[axis])
    throw_shape_error(op, {{"input", s}},
                      "slice [" + std::to_string(start) + ":" + std::to_string(stop) + "] must satisfy start ≤ stop ≤ " +
                          std::to_string(s[axis]) + " (the size of axis " + std::to_string(axis) + ")");
}

// Copies between a full array and its slice: to_slice ? full → part : part += into full.
template <class T>
void copy_slice(T* full, T* part, const detail::AxisSplit& f, std::size_t start, std::size_t count, std::size_t step,
                bool to_slice) {
  for (std::size_t o = 0; o < f.outer; ++o)
    for (std::size_t i = 0; i < count; ++i) {
      T* src = full + (o * f.n + start + i * step) * f.inner;
      T* dst = part + (o * count + i) * f.inner;
      for (std::size_t r = 0; r < f.inner; ++r) {
        if (to_slice) dst[r] = src[r];
        else src[r] += dst[r];
      }
    }
}

}  // namespace

Tensor slice(const Tensor& x, int axis, std::size_t start, std::size_t stop, std::size_t step) {
  const Shape sx = x.shape();
  const std::size_t ax = normalize_axis("slice", axis, sx);
  check_slice("slice", sx, ax, start, stop, step);
  const std::size_t count = slice_count(start, stop, step);
  if (start == 0 && stop == sx[ax] && step == 1) return x;
  Shape so = sx;
  so[ax] = count;
  const detail::AxisSplit f = detail::split_at(sx, ax);
  Tensor y = detail::empty_tensor(so, x.dtype());
  detail::visit_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const detail::Array<T>& a = detail::array<T>(x, "slice");
    copy_slice<T>(const_cast<T*>(a.data()), detail::array_mut<T>(y, "slice").data(), f, start, count, step, true);
  });
  return record("slice", {x}, y, "dx += unslice(dy)", [axis, start, stop, step](BackwardContext& c) {
    c.accumulate_slice(0, c.grad_out(), axis, start, stop, step);  // in place: no zero tensor of x's size
  });
}

Tensor unslice(const Tensor& g, const Shape& shape, int axis, std::size_t start, std::size_t stop, std::size_t step) {
  const std::size_t ax = normalize_axis("unslice", axis, shape);
  check_slice("unslice", shape, ax, start, stop, step);
  const std::size_t count = slice_count(start, stop, step);
  Shape expected = shape;
  expected[ax] = count;
  if (g.shape() != expected)
    throw_shape_error("unslice", {{"gradient", g.shape()}, {"slice of", shape}},
                      "the gradient must have the slice's shape " + expected.str());
  const detail::AxisSplit f = detail::split_at(shape, ax);
  Tensor y = detail::map("unslice", g, [&](const auto& a) {
    using T = typename std::decay_t<decltype(a)>::value_type;
    detail::Array<T> out = xt::zeros<T>(detail::xshape(shape));
    copy_slice<T>(out.data(), const_cast<T*>(a.data()), f, start, count, step, false);
    return out;
  });
  return record("unslice", {g}, y, "dg += slice(dy)", [axis, start, stop, step](BackwardContext& c) {
    c.accumulate(0, slice(c.grad_out(), axis, start, stop, step));
  });
}

}  // namespace rwd
