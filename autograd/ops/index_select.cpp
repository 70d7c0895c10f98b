// y = x[…, indices, …] along `axis` (an embedding lookup: index_select(W, 0, ids))
// backward: prim::index_select (autograd/primitives.hpp) — each selected slice's adjoint added back
// at its index (repeats add up)
//
// index_add is index_select's adjoint and a primitive of its own (prim::index_add), so double
// backward stays on the tape: g' = index_add(g).
#include "op.hpp"

namespace rwd {

namespace detail {
void check_indices(const char* op, const Indices& indices, std::size_t n, std::size_t axis, const Shape& shape) {
  for (std::size_t k = 0; k < indices.size(); ++k)
    if (indices[k] < 0 || static_cast<std::size_t>(indices[k]) >= n)
      throw ValueError(std::string(op) + ": index " + std::to_string(indices[k]) + " at position " + std::to_string(k) +
                       " is out of range [0, " + std::to_string(n) + ") for axis " + std::to_string(axis) +
                       " of shape " + shape.str());
}
}  // namespace detail

Tensor index_select(const Tensor& x, int axis, const Indices& indices) {
  const Shape sx = x.shape();
  const std::size_t ax = normalize_axis("index_select", axis, sx);
  detail::check_indices("index_select", indices, sx[ax], ax, sx);
  Tensor y = kernels::index_select("index_select", x, ax, indices.data(), indices.size());
  return record(prim::index_select, {x}, y, [sx, axis, indices](BackwardContext& c) {
    c.accumulate(0, index_add(c.grad_out(), sx, axis, indices));
  });
}

Tensor index_add(const Tensor& g, const Shape& shape, int axis, const Indices& indices) {
  const std::size_t ax = normalize_axis("index_add", axis, shape);
  detail::check_indices("index_add", indices, shape[ax], ax, shape);
  Shape expected = shape;
  expected[ax] = indices.size();
  if (g.shape() != expected)
    throw_shape_error("index_add", {{"source", g.shape()}, {"target", shape}},
                      "the source must have shape " + expected.str() + " (one slice per index)");
  Tensor y = kernels::index_add("index_add", g, shape, ax, indices.data(), indices.size());
  return record(prim::index_add, {g}, y, [axis, indices](BackwardContext& c) {
    c.accumulate(0, index_select(c.grad_out(), axis, indices));
  });
}

}  // namespace rwd
