// y = x[..., start:stop:step, ...] along `axis`
// backward: prim::slice (autograd/primitives.hpp) — dy placed back at the sliced positions, zeros elsewhere
//
// unslice is slice's adjoint and a primitive of its own (prim::unslice), so that double backward
// stays on the tape: g' = unslice(g).
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

}  // namespace

Tensor slice(const Tensor& x, int axis, std::size_t start, std::size_t stop, std::size_t step) {
  const Shape sx = x.shape();
  const std::size_t ax = normalize_axis("slice", axis, sx);
  check_slice("slice", sx, ax, start, stop, step);
  const std::size_t count = slice_count(start, stop, step);
  if (start == 0 && stop == sx[ax] && step == 1) return x;
  // With only size-1 axes before `axis` (the leading axis, most often) and consecutive indices, the
  // slice is the contiguous run [start·inner, (start + count)·inner) of x's values: a view. Else a copy.
  const kernels::AxisSplit f = kernels::split_at(sx, ax);
  Shape so = sx;
  so[ax] = count;
  Tensor y = f.outer == 1 && (step == 1 || count <= 1) ? detail::make_view(x, start * f.inner, so, "slice")
                                                        : kernels::slice("slice", x, ax, start, count, step);
  return record(prim::slice, {x}, y, [axis, start, stop, step](BackwardContext& c) {
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
  Tensor y = kernels::unslice("unslice", g, shape, ax, start, count, step);
  return record(prim::unslice, {g}, y, [axis, start, stop, step](BackwardContext& c) {
    c.accumulate(0, slice(c.grad_out(), axis, start, stop, step));
  });
}

}  // namespace rwd
