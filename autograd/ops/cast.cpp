// y = x converted to another dtype
// dx += cast(dy, x.dtype)
#include "op.hpp"

namespace rwd {

Tensor cast(const Tensor& x, Dtype dtype) {
  if (x.dtype() == dtype) return x;
  Tensor y = detail::visit_dtype(x.dtype(), [&](auto from) {
    using F = decltype(from);
    const auto& a = detail::array<F>(x, "cast");
    return detail::visit_dtype(dtype, [&](auto to) {
      using T = decltype(to);
      detail::Array<T> out = xt::cast<T>(a);
      return detail::make_tensor<T>(std::move(out));
    });
  });
  return record("cast", {x}, y, "dx += cast(dy, x.dtype)", [](BackwardContext& c) {
    c.accumulate(0, cast(c.grad_out(), c.input(0).dtype()));
  });
}

}  // namespace rwd
