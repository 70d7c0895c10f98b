// y[…, j, …] = x[…, index[…, j, …], …] along `axis` (PyTorch's gather; picks a class's log-prob)
// backward: prim::gather (autograd/primitives.hpp) — each picked element's adjoint added back where
// it was picked from
//
// scatter_add is gather's adjoint and a primitive of its own (prim::scatter_add), so double backward
// stays on the tape: g' = scatter_add(g).
#include "op.hpp"

namespace rwd {

namespace {

// index must have x's dimensions except along the axis.
void check_gather(const char* op, const Shape& sx, const Shape& si, std::size_t ax, const Indices& index) {
  bool ok = si.ndim() == sx.ndim();
  for (std::size_t d = 0; ok && d < sx.ndim(); ++d) ok = d == ax || si[d] == sx[d];
  if (!ok)
    throw_shape_error(op, {{"input", sx}, {"index", si}},
                      "the index must match the input in every dimension but axis " + std::to_string(ax));
  if (index.size() != si.numel())
    throw ValueError(std::string(op) + ": " + std::to_string(index.size()) + " indices do not fill index shape " +
                     si.str());
  detail::check_indices(op, index, sx[ax], ax, sx);
}

}  // namespace

Tensor gather(const Tensor& x, int axis, const Indices& index, const Shape& index_shape) {
  const Shape sx = x.shape();
  const std::size_t ax = normalize_axis("gather", axis, sx);
  check_gather("gather", sx, index_shape, ax, index);
  Tensor y = kernels::gather("gather", x, ax, index.data(), index_shape);
  return record(prim::gather, {x}, y, [sx, axis, index, index_shape](BackwardContext& c) {
    c.accumulate(0, scatter_add(c.grad_out(), sx, axis, index, index_shape));
  });
}

Tensor scatter_add(const Tensor& g, const Shape& shape, int axis, const Indices& index, const Shape& index_shape) {
  const std::size_t ax = normalize_axis("scatter_add", axis, shape);
  check_gather("scatter_add", shape, index_shape, ax, index);
  if (g.shape() != index_shape)
    throw_shape_error("scatter_add", {{"source", g.shape()}, {"index", index_shape}}, "the source must have the index's shape");
  Tensor y = kernels::scatter_add("scatter_add", g, shape, ax, index.data());
  return record(prim::scatter_add, {g}, y, [axis, index, index_shape](BackwardContext& c) {
    c.accumulate(0, gather(c.grad_out(), axis, index, index_shape));
  });
}

}  // namespace rwd
