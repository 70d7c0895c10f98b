#include "adam.hpp"

#include <cmath>

#include "../kernels/adam.hpp"

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

}  // namespace

Adam::Adam(std::vector<Tensor> params, AdamOptions options) : Adam("Adam", std::move(params), options) {}

Adam::Adam(const char* name, std::vector<Tensor> params, AdamOptions options)
    : Optimizer(name, checked(name, std::move(params), options), options.lr, [&] {
        std::vector<Slot> s;
        for (auto& [slot, counter] : slots(options))
          s.push_back({slot, counter, /*non_negative=*/slot == "exp_avg_sq" || slot == "max_exp_avg_sq"});
        return s;
      }()),
      m_options(options) {}

void Adam::update(std::size_t i, Tensor& param, const Tensor& grad) {
  init_state(i);
  Tensor& step = state(i, k_step);
  const double t = step.item() + 1;
  step.fill(t);
  const AdamOptions& o = m_options;
  if (t != m_bias_t) {
    m_bias_t = t;
    m_bias1 = std::pow(o.betas.first, t);
    m_bias2_sqrt = std::sqrt(1.0 - std::pow(o.betas.second, t));
  }
  const double decay = o.decoupled_weight_decay ? 1.0 - lr() * o.weight_decay : o.weight_decay;
  const double step_size = lr() / (1.0 - m_bias1);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    kernels::AdamCoefficients<T> c{};
    c.b1 = static_cast<T>(o.betas.first), c.b2 = static_cast<T>(o.betas.second);
    c.one_minus_b1 = static_cast<T>(1.0 - o.betas.first), c.one_minus_b2 = static_cast<T>(1.0 - o.betas.second);
    c.decay = static_cast<T>(decay), c.step_size = static_cast<T>(step_size);
    c.bc2_sqrt = static_cast<T>(m_bias2_sqrt), c.eps = static_cast<T>(o.eps);
    c.l2 = o.weight_decay != 0 && !o.decoupled_weight_decay;
    c.decoupled = o.weight_decay != 0 && o.decoupled_weight_decay;
    // Element-wise in vectors, split across threads when large (kernels/adam.hpp): the scalar
    // formula's bits at any width and thread count.
    kernels::adam_update<T>(c, param.data<T>(), grad.data<T>(), state(i, k_exp_avg).data<T>(),
                            state(i, k_exp_avg_sq).data<T>(),
                            o.amsgrad ? state(i, k_max_exp_avg_sq).data<T>() : nullptr, param.numel());
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
