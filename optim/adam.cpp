#include "adam.hpp"

#include <algorithm>
#include <cmath>

#include "../kernels/pool.hpp"

namespace rwd {

namespace {

std::vector<Tensor> checked(const char* who, std::vector<Tensor> params, const AdamOptions& o) {
  check_hyper(o.eps >= 0, who, "epsilon", o.eps, "must be >= 0");
  check_hyper(o.betas.first >= 0 && o.betas.first < 1, who, "beta parameter at index 0", o.betas.first,
              "must be in [0, 1)");
  check_hyper(o.betas.second >= 0 && o.betas.second < 1, who, "beta parameter at index 1", o.betas.second,
              "must be in [0, 1)");
  check_hyper(o.weight_decay >= 0, who, "weight_decay", o.weight_decay, "must be >= 0");
  return params;
}

// Slot order: step, exp_avg, exp_avg_sq[, max_exp_avg_sq].
enum : std::size_t { k_step, k_exp_avg, k_exp_avg_sq, k_max_exp_avg_sq };

std::vector<std::pair<std::string, bool>> slots(const AdamOptions& o) {
  std::vector<std::pair<std::string, bool>> s{{"step", true}, {"exp_avg", false}, {"exp_avg_sq", false}};
  if (o.amsgrad) s.emplace_back("max_exp_avg_sq", false);
  return s;
}

struct Coefficients {
  double decay;        // 1 − lr·λ (decoupled) — or λ (L2)
  double step_size;    // lr / (1 − β₁ᵗ)
  double bc2_sqrt;     // √(1 − β₂ᵗ)
};

template <class T>
void adam_step(T* p, const T* grad, T* m, T* v, T* vmax, std::size_t n, const AdamOptions& o, Coefficients c) {
  const T b1 = static_cast<T>(o.betas.first), b2 = static_cast<T>(o.betas.second);
  const T one_minus_b1 = static_cast<T>(1.0 - o.betas.first), one_minus_b2 = static_cast<T>(1.0 - o.betas.second);
  const T decay = static_cast<T>(c.decay), step_size = static_cast<T>(c.step_size);
  const T bc2_sqrt = static_cast<T>(c.bc2_sqrt), eps = static_cast<T>(o.eps);
  const bool l2 = o.weight_decay != 0 && !o.decoupled_weight_decay;
  const bool decoupled = o.weight_decay != 0 && o.decoupled_weight_decay;
  for (std::size_t j = 0; j < n; ++j) {
    if (decoupled) p[j] = p[j] * decay;  // p ← p(1 − lr·λ)
    T g = grad[j];
    if (l2) g = g + decay * p[j];                      // g ← g + λp
    m[j] = b1 * m[j] + one_minus_b1 * g;               // m ← β₁m + (1−β₁)g
    v[j] = b2 * v[j] + one_minus_b2 * g * g;           // v ← β₂v + (1−β₂)g²
    T second = v[j];
    if (vmax) second = vmax[j] = std::max(vmax[j], v[j]);  // v̂ ← max(v̂, v)
    const T denom = std::sqrt(second) / bc2_sqrt + eps;    // √v/√(1−β₂ᵗ) + ε
    p[j] = p[j] - step_size * (m[j] / denom);              // p ← p − lr/(1−β₁ᵗ) · m/denom
  }
}

}  // namespace

Adam::Adam(std::vector<Tensor> params, AdamOptions options) : Adam("Adam", std::move(params), options) {}

Adam::Adam(const char* name, std::vector<Tensor> params, AdamOptions options)
    : Optimizer(name, checked(name, std::move(params), options), options.lr, [&] {
        std::vector<Slot> s;
        for (auto& [slot, counter] : slots(options)) s.push_back({slot, counter});
        return s;
      }()),
      m_options(options) {}

void Adam::update(std::size_t i, Tensor& param, const Tensor& grad) {
  init_state(i);
  Tensor& step = state(i, k_step);
  const double t = step.item() + 1;
  step.fill(t);
  const AdamOptions& o = m_options;
  Coefficients c;
  c.decay = o.decoupled_weight_decay ? 1.0 - lr() * o.weight_decay : o.weight_decay;
  c.step_size = lr() / (1.0 - std::pow(o.betas.first, t));
  c.bc2_sqrt = std::sqrt(1.0 - std::pow(o.betas.second, t));
  auto run = [&](auto tag) {
    using T = decltype(tag);
    T* p = param.data<T>();
    const T* g = grad.data<T>();
    T* m = state(i, k_exp_avg).data<T>();
    T* v = state(i, k_exp_avg_sq).data<T>();
    T* vmax = o.amsgrad ? state(i, k_max_exp_avg_sq).data<T>() : nullptr;
    // Element-wise: split across threads when large (kernels/pool.hpp), the same bits at any count.
    kernels::parallel_for(param.numel(), kernels::grain_update, [&](std::size_t b, std::size_t e) {
      adam_step<T>(p + b, g + b, m + b, v + b, vmax ? vmax + b : nullptr, e - b, o, c);
    });
  };
  if (param.dtype() == Dtype::f32)
    run(float{});
  else
    run(double{});
}

std::string Adam::str() const {
  const AdamOptions& o = m_options;
  std::string s = std::string(name()) + "(lr=" + format_number(lr()) + ", betas=(" + format_number(o.betas.first) +
                  ", " + format_number(o.betas.second) + "), eps=" + format_number(o.eps) +
                  ", weight_decay=" + format_number(o.weight_decay);
  if (o.amsgrad) s += ", amsgrad=true";
  if (o.decoupled_weight_decay && std::string(name()) == "Adam") s += ", decoupled_weight_decay=true";
  return s + ")";
}

AdamW::AdamW(std::vector<Tensor> params, AdamWOptions o)
    : Adam("AdamW", std::move(params),
           AdamOptions{.lr = o.lr,
                       .betas = o.betas,
                       .eps = o.eps,
                       .weight_decay = o.weight_decay,
                       .amsgrad = o.amsgrad,
                       .decoupled_weight_decay = true}) {}

}  // namespace rwd
