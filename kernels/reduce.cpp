// The tensor-level sum and max of reduce.hpp.
#include "reduce.hpp"

#include <algorithm>
#include <cmath>

#include "copy.hpp"

namespace rwd::kernels {

Tensor sum(const char* op, const Tensor& x, const Shape& kept, const Shape& out_shape) {
  if (x.numel() == kept.numel()) {
    // Only axes of extent 1 are summed (a bias's gradient over a batch of one): each output is 0 + its
    // one input, the value sum_into gives it, without the zero fill and the loop plan.
    Tensor y = detail::empty_tensor(out_shape, x.dtype());
    detail::visit_dtype(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* a = detail::data<T>(x, op);
      T* out = detail::data_mut<T>(y, op);
      parallel_for(y.numel(), grain_cheap, [&](std::size_t b, std::size_t e) {
        for (std::size_t i = b; i < e; ++i) out[i] = T(0) + a[i];
      });
    });
    return y;
  }
  Tensor y = Tensor::zeros(out_shape, x.dtype());  // the same elements as `kept`
  detail::visit_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    sum_into<T>(detail::data<T>(x, op), x.shape(), detail::data_mut<T>(y, op), kept);
  });
  return y;
}

Tensor max(const char* op, const Tensor& x, std::size_t axis, const Shape& out_shape, Tensor& onehot) {
  const AxisSplit f = split_at(x.shape(), axis);
  Tensor y = detail::empty_tensor(out_shape, x.dtype());
  onehot = Tensor::zeros(x.shape(), x.dtype());
  detail::visit_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* a = detail::data<T>(x, op);
    T* out = detail::data_mut<T>(y, op);
    T* hot = detail::data_mut<T>(onehot, op);
    // One lane (o, r) per output element, scanned along the axis; lanes split across threads.
    parallel_for(f.outer * f.inner, std::max<std::size_t>(1, grain_cheap / std::max<std::size_t>(f.n, 1)),
                 [&](std::size_t b, std::size_t e) {
                   for_blocks(b, e, 1, f.inner, [&](std::size_t o, std::size_t, std::size_t r0, std::size_t r1) {
                     for (std::size_t r = r0; r < r1; ++r) {
                       // The first largest; a NaN is larger than everything (the first NaN wins), so
                       // a lane with a NaN has a NaN maximum, as in PyTorch and NumPy.
                       std::size_t best = 0;
                       const T* base = a + o * f.n * f.inner + r;
                       T cur = base[0];
                       if (!std::isnan(cur))
                         for (std::size_t i = 1; i < f.n; ++i) {
                           const T v = base[i * f.inner];
                           if (std::isnan(v)) {
                             best = i;
                             break;
                           }
                           if (v > cur) best = i, cur = v;
                         }
                       out[o * f.inner + r] = base[best * f.inner];
                       hot[(o * f.n + best) * f.inner + r] = T(1);
                     }
                   });
                 });
  });
  return y;
}

}  // namespace rwd::kernels
