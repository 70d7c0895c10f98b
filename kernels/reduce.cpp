// The tensor-level sum and max of reduce.hpp.
#include "reduce.hpp"

#include <algorithm>

#include "copy.hpp"

namespace rwd::kernels {

Tensor sum(const char* op, const Tensor& x, const Shape& kept, const Shape& out_shape) {
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
    for (std::size_t o = 0; o < f.outer; ++o)
      for (std::size_t r = 0; r < f.inner; ++r) {
        std::size_t best = 0;
        const T* base = a + o * f.n * f.inner + r;
        for (std::size_t i = 1; i < f.n; ++i)
          if (base[i * f.inner] > base[best * f.inner]) best = i;
        out[o * f.inner + r] = base[best * f.inner];
        hot[(o * f.n + best) * f.inner + r] = T(1);
      }
  });
  return y;
}

}  // namespace rwd::kernels
