// y = ln(1 + x)   — accurate where x is tiny (ln(1 + 1e-18) is 1e-18, not 0)
// dx += dy / (1 + x)
#include <cmath>

#include "op.hpp"

namespace rwd {

Tensor log1p(const Tensor& x) {
  Tensor y = detail::map("log1p", x, [](const auto& a) {
    using T = typename std::decay_t<decltype(a)>::value_type;
    detail::Array<T> out(a.shape());
    const T* in = a.data();
    T* o = out.data();
    for (std::size_t i = 0; i < a.size(); ++i) o[i] = std::log1p(in[i]);
    return out;
  });
  return record("log1p", {x}, y, "dx += dy/(1+x)",
                [](BackwardContext& c) { c.accumulate(0, c.grad_out() / (1.0 + c.input(0))); });
}

}  // namespace rwd
