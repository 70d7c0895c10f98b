// The tensor-level copies of copy.hpp: each allocates its output and runs one loop over all of it.
#include "copy.hpp"

#include "output.hpp"

namespace rwd::kernels {

namespace {

// Row-major element strides of a shape.
void strides_of(const Shape& s, std::ptrdiff_t* out) {
  std::ptrdiff_t stride = 1;
  for (std::size_t d = s.ndim(); d-- > 0;) {
    out[d] = stride;
    stride *= static_cast<std::ptrdiff_t>(s[d]);
  }
}

}  // namespace

Tensor permute(const char* op, const Tensor& x, const std::vector<std::size_t>& perm) {
  const Shape sx = x.shape();
  std::ptrdiff_t x_strides[Shape::max_dims] = {}, in_strides[Shape::max_dims] = {};
  strides_of(sx, x_strides);
  Shape so;
  for (std::size_t k : perm) {
    in_strides[so.ndim()] = x_strides[k];
    so.push_back(sx[k]);
  }
  return produce(op, x, so, false, [&](const auto* in, auto* out) { strided_copy(so, in, in_strides, out); });
}

Tensor broadcast_to(const char* op, const Tensor& x, const Shape& shape) {
  const Shape sx = x.shape();
  // x's strides along the output's dimensions: 0 where it is repeated (size 1, or a missing leading one).
  std::ptrdiff_t x_strides[Shape::max_dims] = {}, in_strides[Shape::max_dims] = {};
  strides_of(sx, x_strides);
  const std::size_t lead = shape.ndim() - sx.ndim();
  for (std::size_t j = 0; j < sx.ndim(); ++j) in_strides[lead + j] = sx[j] == 1 ? 0 : x_strides[j];
  return produce(op, x, shape, false, [&](const auto* in, auto* out) { strided_copy(shape, in, in_strides, out); });
}

Tensor slice(const char* op, const Tensor& x, std::size_t axis, std::size_t start, std::size_t count,
             std::size_t step) {
  const Shape sx = x.shape();
  Shape so = sx;
  so[axis] = count;
  const AxisSplit f = split_at(sx, axis);
  return produce(op, x, so, false,
                 [&](const auto* in, auto* out) { slice_copy(in, out, f, start, count, step, 0, f.outer); });
}

Tensor zeros(const Shape& shape, Dtype dtype) {
  if (shape.numel() < 2 * grain_cheap) return Tensor::zeros(shape, dtype);  // as before: no memset call
  Tensor y = detail::empty_tensor(shape, dtype);
  detail::visit_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* out = detail::data_mut<T>(y, "zeros");
    parallel_for(shape.numel(), grain_cheap, [&](std::size_t begin, std::size_t end) {
      std::fill(out + begin, out + end, T(0));
    });
  });
  return y;
}

Tensor unslice(const char* op, const Tensor& g, const Shape& shape, std::size_t axis, std::size_t start,
               std::size_t count, std::size_t step) {
  const AxisSplit f = split_at(shape, axis);
  return produce(op, g, shape, true,
                 [&](const auto* in, auto* out) { slice_add(out, in, f, start, count, step, 0, f.outer); });
}

namespace {

// The tensors placed one after another along `axis` of a new tensor of shape so: piece k spans
// extent(k) indices there (concat: its own size along the axis; stack: 1, the new axis).
template <class Extent>
Tensor join(const char* op, const std::vector<Tensor>& xs, std::size_t axis, const Shape& so, Extent extent) {
  Tensor y = detail::empty_tensor(so, xs[0].dtype());
  detail::visit_dtype(xs[0].dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* out = detail::data_mut<T>(y, op);
    const AxisSplit f = split_at(so, axis);
    std::size_t offset = 0;
    for (std::size_t k = 0; k < xs.size(); ++k) {
      const std::size_t n = extent(k);
      place_blocks(detail::data<T>(xs[k], op), n * f.inner, out, f.n * f.inner, offset * f.inner, 0, f.outer);
      offset += n;
    }
  });
  return y;
}

}  // namespace

Tensor concat(const char* op, const std::vector<Tensor>& xs, std::size_t axis, const Shape& so) {
  return join(op, xs, axis, so, [&](std::size_t k) { return xs[k].shape()[axis]; });
}

Tensor stack(const char* op, const std::vector<Tensor>& xs, std::size_t axis, const Shape& so) {
  return join(op, xs, axis, so, [](std::size_t) { return std::size_t{1}; });
}

Tensor gather(const char* op, const Tensor& x, std::size_t axis, const std::int64_t* index, const Shape& index_shape) {
  const AxisSplit fi = split_at(index_shape, axis);
  const std::size_t n = x.shape()[axis];
  return produce(op, x, index_shape, false,
                 [&](const auto* in, auto* out) { gather(in, n, index, fi, out, 0, fi.outer); });
}

Tensor scatter_add(const char* op, const Tensor& g, const Shape& shape, std::size_t axis, const std::int64_t* index) {
  const AxisSplit fi = split_at(g.shape(), axis);
  const std::size_t n = shape[axis];
  return produce(op, g, shape, true,
                 [&](const auto* in, auto* out) { scatter_add(in, index, fi, out, n, 0, fi.outer); });
}

Tensor index_select(const char* op, const Tensor& x, std::size_t axis, const std::int64_t* indices, std::size_t k) {
  const Shape sx = x.shape();
  Shape so = sx;
  so[axis] = k;
  const AxisSplit f = split_at(sx, axis);
  return produce(op, x, so, false,
                 [&](const auto* in, auto* out) { index_select(in, f, indices, k, out, 0, f.outer); });
}

Tensor index_add(const char* op, const Tensor& g, const Shape& shape, std::size_t axis, const std::int64_t* indices,
                 std::size_t k) {
  const AxisSplit f = split_at(shape, axis);
  return produce(op, g, shape, true,
                 [&](const auto* in, auto* out) { index_add(in, indices, k, f, out, 0, f.outer); });
}

Tensor cast(const char* op, const Tensor& x, Dtype dtype) {
  Tensor y = detail::empty_tensor(x.shape(), dtype);
  detail::visit_dtype(x.dtype(), [&](auto from) {
    using F = decltype(from);
    const F* pa = detail::data<F>(x, op);
    detail::visit_dtype(dtype, [&](auto to) {
      using T = decltype(to);
      convert(pa, detail::data_mut<T>(y, op), x.numel());
    });
  });
  return y;
}

}  // namespace rwd::kernels
