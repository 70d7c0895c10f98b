#include "argreduce.hpp"

#include <cmath>

#include "../core/detail/impl.hpp"
#include "copy.hpp"  // AxisSplit

namespace rwd::kernels {

std::vector<std::int64_t> arg_extreme(const char* op, const Tensor& x, std::size_t axis, bool largest) {
  const AxisSplit f = split_at(x.shape(), axis);
  std::vector<std::int64_t> out(f.outer * f.inner);
  detail::visit_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* a = detail::data<T>(x, op);
    for (std::size_t o = 0; o < f.outer; ++o)
      for (std::size_t r = 0; r < f.inner; ++r) {
        const T* lane = a + o * f.n * f.inner + r;
        std::size_t best = 0;
        T v = lane[0];
        if (!std::isnan(v))
          for (std::size_t i = 1; i < f.n; ++i) {
            const T u = lane[i * f.inner];
            if (std::isnan(u)) {  // the first NaN wins, and nothing beats it
              best = i;
              break;
            }
            if (largest ? u > v : u < v) best = i, v = u;
          }
        out[o * f.inner + r] = static_cast<std::int64_t>(best);
      }
  });
  return out;
}

}  // namespace rwd::kernels
