// Compositions of primitives: no backward of their own — the tape differentiates them.
#include <algorithm>
#include <cmath>

#include <limits>

#include "ops.hpp"
#include "../kernels/elementwise.hpp"  // mask, map
#include "tape.hpp"

namespace rwd {

Tensor sum_to_shape(const Tensor& g, const Shape& shape) {
  const Shape gs = g.shape();
  if (gs == shape) return g;
  if (shape.ndim() > gs.ndim())
    throw_shape_error("sum_to_shape", {{"gradient", gs}, {"target", shape}}, "the target has more dimensions");
  const std::size_t lead = gs.ndim() - shape.ndim();
  std::vector<int> axes;
  for (std::size_t i = 0; i < lead; ++i) axes.push_back(static_cast<int>(i));
  for (std::size_t i = 0; i < shape.ndim(); ++i) {
    if (shape[i] == gs[lead + i]) continue;
    if (shape[i] != 1)
      throw_shape_error("sum_to_shape", {{"gradient", gs}, {"target", shape}},
                        "target dimension " + std::to_string(i) + " must equal the gradient's or be 1");
    axes.push_back(static_cast<int>(lead + i));
  }
  return reshape(sum(g, axes, false), shape);
}

Tensor mean(const Tensor& x) { return sum(x) / static_cast<double>(std::max<std::size_t>(x.numel(), 1)); }

Tensor mean(const Tensor& x, const std::vector<int>& axes, bool keepdims) {
  const Shape s = x.shape();
  double n = 1;
  for (int a : axes) n *= static_cast<double>(s[normalize_axis("mean", a, s)]);
  return sum(x, axes, keepdims) / n;
}

Tensor min(const Tensor& x, int axis, bool keepdims) { return -max(-x, axis, keepdims); }

Tensor square(const Tensor& x) { return x * x; }

Tensor transpose(const Tensor& x) {
  const std::size_t n = x.ndim();
  if (n < 2) throw_shape_error("transpose", {{"input", x.shape()}}, "needs at least 2 dimensions");
  std::vector<int> axes(n);
  for (std::size_t i = 0; i < n; ++i) axes[i] = static_cast<int>(i);
  std::swap(axes[n - 1], axes[n - 2]);
  return permute(x, axes);
}

Tensor unsqueeze(const Tensor& x, int axis) {
  const Shape s = x.shape();
  const int n = static_cast<int>(s.ndim()) + 1;
  if (axis < -n || axis >= n)
    throw_shape_error("unsqueeze", {{"input", s}}, "axis " + std::to_string(axis) + " is out of range for a new axis");
  const auto a = static_cast<std::size_t>(axis < 0 ? axis + n : axis);
  Shape out;
  for (std::size_t i = 0; i < s.ndim(); ++i) {
    if (i == a) out.push_back(1);
    out.push_back(s[i]);
  }
  if (a == s.ndim()) out.push_back(1);
  return reshape(x, out);
}

Tensor squeeze(const Tensor& x, int axis) {
  const Shape s = x.shape();
  const std::size_t a = normalize_axis("squeeze", axis, s);
  if (s[a] != 1) throw_shape_error("squeeze", {{"input", s}}, "axis " + std::to_string(axis) + " does not have size 1");
  Shape out;
  for (std::size_t i = 0; i < s.ndim(); ++i)
    if (i != a) out.push_back(s[i]);
  return reshape(x, out);
}

// logsumexp(x) = m + log Σ exp(x − m), m = max(x) held constant: the value does not depend on m,
// so detaching it changes no gradient and keeps exp from overflowing. An infinite max is taken as 0
// (PyTorch's logsumexp_out_impl does the same): a lane of −inf is then log 0 = −inf, one holding +inf
// is +inf — x − m would be −inf − (−inf) = NaN.
Tensor logsumexp(const Tensor& x, int axis, bool keepdims) {
  const Tensor m = kernels::map("logsumexp", max(x, axis, true).detach(),
                                [](auto v) { return std::isinf(v) ? decltype(v)(0) : v; });
  Tensor out = m + log(sum(exp(x - m), {axis}, true));
  return keepdims ? out : squeeze(out, axis);
}

Tensor softmax(const Tensor& x, int axis) { return exp(log_softmax(x, axis)); }

// log_softmax(x) = (x − m) − log Σ exp(x − m): shifting before subtracting keeps float32 exact for
// large |x| (x − logsumexp(x) would cancel two large numbers).
Tensor log_softmax(const Tensor& x, int axis) {
  Tensor shifted = x - max(x, axis, true).detach();
  return shifted - log(sum(exp(shifted), {axis}, true));
}

// softplus(x) = log(1 + eˣ), by branch: log1p(eˣ) for x < 0, x + log1p(e⁻ˣ) for x ≥ 0. Each branch
// exponentiates only a non-positive number (clamped, so the branch not taken cannot overflow either
// and send inf·0 = NaN back), log1p keeps tiny values (softplus(−40) = 4.2e-18, not 0), and the
// x ≥ 0 branch is smooth through 0, so every derivative is right there too (σ(0) = ½, σ'(0) = ¼) —
// unlike max(x, 0) + log1p(e^−|x|), whose kinks cancel only in value.
Tensor softplus(const Tensor& x) {
  const double inf = std::numeric_limits<double>::infinity();
  const Tensor negative = log1p(exp(clamp(x, -inf, 0.0)));
  const Tensor positive = x + log1p(exp(-clamp(x, 0.0, inf)));
  const Tensor below = kernels::mask("softplus", x, [](auto v) { return v < 0; });
  return where(below, negative, positive);
}

Tensor log_sigmoid(const Tensor& x) { return -softplus(-x); }

std::vector<Tensor> split(const Tensor& x, const std::vector<std::size_t>& sizes, int axis) {
  const Shape s = x.shape();
  const std::size_t a = normalize_axis("split", axis, s);
  std::size_t total = 0;
  for (std::size_t n : sizes) total += n;
  if (total != s[a])
    throw_shape_error("split", {{"input", s}},
                      "sizes add up to " + std::to_string(total) + " but axis " + std::to_string(axis) + " has " +
                          std::to_string(s[a]));
  std::vector<Tensor> out;
  std::size_t start = 0;
  for (std::size_t n : sizes) {
    out.push_back(slice(x, axis, start, start + n));
    start += n;
  }
  return out;
}

std::vector<Tensor> chunk(const Tensor& x, std::size_t n, int axis) {
  const Shape s = x.shape();
  const std::size_t a = normalize_axis("chunk", axis, s);
  if (n == 0) throw ValueError("chunk: the number of chunks must be positive");
  const std::size_t each = (s[a] + n - 1) / n;
  std::vector<std::size_t> sizes;
  for (std::size_t left = s[a]; left > 0; left -= std::min(each, left)) sizes.push_back(std::min(each, left));
  return split(x, sizes, axis);
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  return where(mask, Tensor::scalar(value, x.dtype()), x);
}

// ---- operators ----
Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator+(const Tensor& a, double b) { return add(a, Tensor::scalar(b, a.dtype())); }
Tensor operator-(const Tensor& a, double b) { return sub(a, Tensor::scalar(b, a.dtype())); }
Tensor operator*(const Tensor& a, double b) { return mul(a, Tensor::scalar(b, a.dtype())); }
Tensor operator/(const Tensor& a, double b) { return div(a, Tensor::scalar(b, a.dtype())); }
Tensor operator+(double a, const Tensor& b) { return add(Tensor::scalar(a, b.dtype()), b); }
Tensor operator-(double a, const Tensor& b) { return sub(Tensor::scalar(a, b.dtype()), b); }
Tensor operator*(double a, const Tensor& b) { return mul(Tensor::scalar(a, b.dtype()), b); }
Tensor operator/(double a, const Tensor& b) { return div(Tensor::scalar(a, b.dtype()), b); }

}  // namespace rwd
