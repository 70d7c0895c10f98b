#include "rmsprop.hpp"

#include <cmath>

#include "../kernels/pool.hpp"

namespace rwd {

namespace {

std::vector<Tensor> checked(std::vector<Tensor> params, const RMSpropOptions& o) {
  check_hyper(o.eps >= 0, "RMSprop", "epsilon", o.eps, "must be >= 0");
  // α is the decay of v, Adam's β₂: above 1, v = αv + (1 − α)g² turns negative (√v: NaN); at 1, v
  // stays 0 and every step divides by ε. PyTorch checks only α ≥ 0.
  check_hyper(o.alpha >= 0 && o.alpha < 1, "RMSprop", "alpha", o.alpha, "must be in [0, 1)");
  check_hyper(o.momentum >= 0, "RMSprop", "momentum", o.momentum, "must be >= 0");
  check_hyper(o.weight_decay >= 0, "RMSprop", "weight_decay", o.weight_decay, "must be >= 0");
  return params;
}

bool keras(const RMSpropOptions& o) { return o.flavor == RMSpropFlavor::keras; }

// Slot order: step, square_avg[, momentum_buffer][, grad_avg].
std::vector<std::pair<std::string, bool>> slots(const RMSpropOptions& o) {
  std::vector<std::pair<std::string, bool>> s{{"step", true}, {"square_avg", false}};
  if (o.momentum > 0) s.emplace_back(keras(o) ? "momentum" : "momentum_buffer", false);
  if (o.centered) s.emplace_back("grad_avg", false);
  return s;
}

template <class T>
void rmsprop_step(T* p, const T* grad, T* v, T* buf, T* gavg, std::size_t n, const RMSpropOptions& o, double lr) {
  const T a = static_cast<T>(o.alpha), one_minus_a = static_cast<T>(1.0 - o.alpha);
  const T eps = static_cast<T>(o.eps), mu = static_cast<T>(o.momentum), step = static_cast<T>(lr);
  const T wd = static_cast<T>(o.weight_decay);
  for (std::size_t j = 0; j < n; ++j) {
    T g = grad[j];
    if (!keras(o)) {
      if (o.weight_decay != 0) g = g + wd * p[j];  // g ← g + λp
      v[j] = a * v[j] + one_minus_a * g * g;       // v ← αv + (1−α)g²
      T var = v[j];
      if (gavg) {
        gavg[j] = a * gavg[j] + one_minus_a * g;   // ḡ ← αḡ + (1−α)g
        var = v[j] - gavg[j] * gavg[j];            // v − ḡ²
      }
      const T d = std::sqrt(var) + eps;            // ε outside the root
      if (buf) {
        buf[j] = mu * buf[j] + g / d;              // b ← μb + g/d
        p[j] = p[j] - step * buf[j];               // p ← p − lr·b
      } else {
        p[j] = p[j] - step * (g / d);              // p ← p − lr·g/d
      }
    } else {
      if (o.weight_decay != 0) p[j] = p[j] - p[j] * wd * step;      // p ← p − p·λ·lr (decoupled)
      v[j] = a * v[j] + one_minus_a * g * g;                       // v ← ρv + (1−ρ)g²
      T var = v[j];
      if (gavg) {
        gavg[j] = a * gavg[j] + one_minus_a * g;                   // ḡ ← ρḡ + (1−ρ)g
        var = v[j] - gavg[j] * gavg[j];
      }
      const T delta = step * g / std::sqrt(var + eps);             // ε inside the root
      if (buf) {
        buf[j] = mu * buf[j] + delta;                              // b ← μb + δ
        p[j] = p[j] - buf[j];
      } else {
        p[j] = p[j] - delta;
      }
    }
  }
}

}  // namespace

RMSprop::RMSprop(std::vector<Tensor> params, RMSpropOptions options)
    : Optimizer("RMSprop", checked(std::move(params), options), options.lr, [&] {
        std::vector<Slot> s;
        for (auto& [slot, counter] : slots(options)) s.push_back({slot, counter, /*non_negative=*/slot == "square_avg"});
        return s;
      }()),
      m_options(options) {}

RMSpropOptions RMSprop::keras_defaults() {
  return RMSpropOptions{.lr = 1e-3, .alpha = 0.9, .eps = 1e-7, .flavor = RMSpropFlavor::keras};
}

void RMSprop::update(std::size_t i, Tensor& param, const Tensor& grad) {
  init_state(i);
  Tensor& step = state(i, 0);
  step.fill(step.item() + 1);
  const RMSpropOptions& o = m_options;
  const std::size_t k_buf = 2, k_gavg = o.momentum > 0 ? 3 : 2;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    T* p = param.data<T>();
    const T* g = grad.data<T>();
    T* v = state(i, 1).data<T>();
    T* buf = o.momentum > 0 ? state(i, k_buf).data<T>() : nullptr;
    T* gavg = o.centered ? state(i, k_gavg).data<T>() : nullptr;
    // Element-wise: split across threads when large (kernels/pool.hpp), the same bits at any count.
    kernels::parallel_for(param.numel(), kernels::grain_update, [&](std::size_t b, std::size_t e) {
      rmsprop_step<T>(p + b, g + b, v + b, buf ? buf + b : nullptr, gavg ? gavg + b : nullptr, e - b, o, lr());
    });
  };
  if (param.dtype() == Dtype::f32)
    run(float{});
  else
    run(double{});
}

std::string RMSprop::str() const {
  const RMSpropOptions& o = m_options;
  std::string s = "RMSprop(lr=" + format_number(lr()) + ", alpha=" + format_number(o.alpha) +
                  ", eps=" + format_number(o.eps);
  if (o.weight_decay != 0) s += ", weight_decay=" + format_number(o.weight_decay);
  if (o.momentum != 0) s += ", momentum=" + format_number(o.momentum);
  if (o.centered) s += ", centered=true";
  if (keras(o)) s += ", flavor=keras";
  return s + ")";
}

}  // namespace rwd
