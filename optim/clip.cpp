#include "clip.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>

#include "optimizer.hpp"

namespace rwd {

namespace {

// Calls f(T* data, n) on each defined gradient, as float or double.
template <class F>
void for_each_grad(const std::vector<Tensor>& params, F&& f) {
  for (std::size_t i = 0; i < params.size(); ++i) {
    Tensor g = params[i].defined() ? params[i].grad() : Tensor();
    if (!g.defined()) continue;
    if (g.dtype() == Dtype::f32)
      f(i, g.data<float>(), g.numel());
    else
      f(i, g.data<double>(), g.numel());
  }
}

}  // namespace

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm, double norm_type, bool error_if_nonfinite) {
  check_hyper(max_norm >= 0, "clip_grad_norm", "max_norm", max_norm, "must be >= 0");
  check_hyper(norm_type > 0, "clip_grad_norm", "norm_type", norm_type, "must be > 0, or INFINITY");
  for (std::size_t i = 0; i < params.size(); ++i)
    if (!params[i].defined()) throw ValueError("clip_grad_norm: parameter " + std::to_string(i) + " is undefined");

  // Pass 1: the largest |g| (the ∞-norm, and the scale for pass 2), and the first NaN or ∞.
  double largest = 0;
  bool has_nan = false, has_inf = false;
  std::size_t bad_param = 0, bad_index = 0;
  for_each_grad(params, [&](std::size_t i, auto* g, std::size_t n) {
    for (std::size_t j = 0; j < n; ++j) {
      const double a = std::fabs(static_cast<double>(g[j]));
      if (std::isfinite(a)) {
        largest = std::max(largest, a);
        continue;
      }
      if (!has_nan && !has_inf) bad_param = i, bad_index = j;
      (std::isnan(a) ? has_nan : has_inf) = true;
    }
  });

  // Pass 2: total = m·(Σ (|g|/m)ᵖ)^(1/p), m = largest — the same number as (Σ |g|ᵖ)^(1/p), without
  // overflow or underflow.
  double total;
  if (has_nan)
    total = NAN;
  else if (has_inf)
    total = INFINITY;
  else if (std::isinf(norm_type) || largest == 0)
    total = largest;
  else {
    double acc = 0;
    const bool two = norm_type == 2.0, one = norm_type == 1.0;
    for_each_grad(params, [&](std::size_t, auto* g, std::size_t n) {
      for (std::size_t j = 0; j < n; ++j) {
        const double r = std::fabs(static_cast<double>(g[j])) / largest;
        acc += two ? r * r : one ? r : std::pow(r, norm_type);
      }
    });
    total = largest * (two ? std::sqrt(acc) : one ? acc : std::pow(acc, 1.0 / norm_type));
  }

  if (!std::isfinite(total) && error_if_nonfinite) {
    const Tensor& p = params[bad_param];
    throw ValueError("clip_grad_norm: the total norm of order " + format_number(norm_type) +
                     " of the gradients is " + format_number(total) +
                     " (non-finite), so it cannot be clipped; first non-finite element: parameter " +
                     std::to_string(bad_param) + (p.name().empty() ? "" : " '" + p.name() + "'") + " " +
                     p.shape().str() + ", flat index " + std::to_string(bad_index) +
                     ". Pass error_if_nonfinite = false to scale by it anyway");
  }

  // scale = max_norm / (total + 1e-6), applied when < 1 (or NaN, as PyTorch's clamp lets it through)
  const double scale = max_norm / (total + 1e-6);
  if (!(scale >= 1.0)) {
    for_each_grad(params, [&](std::size_t, auto* g, std::size_t n) {
      using T = std::remove_pointer_t<decltype(g)>;
      const T s = static_cast<T>(scale);
      for (std::size_t j = 0; j < n; ++j) g[j] = g[j] * s;
    });
  }
  return total;
}

void clip_grad_value(const std::vector<Tensor>& params, double clip) {
  check_hyper(clip >= 0, "clip_grad_value", "clip value", clip, "must be >= 0");
  for (std::size_t i = 0; i < params.size(); ++i)
    if (!params[i].defined()) throw ValueError("clip_grad_value: parameter " + std::to_string(i) + " is undefined");
  for_each_grad(params, [&](std::size_t, auto* g, std::size_t n) {
    using T = std::remove_pointer_t<decltype(g)>;
    const T hi = static_cast<T>(clip), lo = -hi;
    for (std::size_t j = 0; j < n; ++j) g[j] = g[j] < lo ? lo : hi < g[j] ? hi : g[j];  // NaN passes through
  });
}

}  // namespace rwd
