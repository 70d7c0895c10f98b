#include "sgd.hpp"

#include <cmath>

#include "../kernels/pool.hpp"

namespace rwd {

namespace {

std::vector<Tensor> checked(std::vector<Tensor> params, const SGDOptions& o) {
  check_hyper(o.momentum >= 0, "SGD", "momentum", o.momentum, "must be >= 0");
  check_hyper(o.weight_decay >= 0, "SGD", "weight_decay", o.weight_decay, "must be >= 0");
  check_hyper(std::isfinite(o.dampening), "SGD", "dampening", o.dampening, "must be finite");
  if (o.nesterov && (o.momentum <= 0 || o.dampening != 0))
    throw ValueError("SGD: Nesterov momentum requires a momentum > 0 and zero dampening (momentum=" +
                     format_number(o.momentum) + ", dampening=" + format_number(o.dampening) + ")");
  return params;
}

std::vector<std::string> slot_names(const SGDOptions& o) {
  if (o.momentum == 0) return {};
  return {"momentum_buffer"};
}

// One step over n elements, in the parameter's precision (coefficients rounded to T once, as
// PyTorch's kernels do).
template <class T>
void sgd_step(T* p, const T* grad, T* buf, std::size_t n, const SGDOptions& o, double lr, bool first) {
  const T wd = static_cast<T>(o.weight_decay), mu = static_cast<T>(o.momentum);
  const T undamped = static_cast<T>(1.0 - o.dampening), step = static_cast<T>(lr);
  for (std::size_t j = 0; j < n; ++j) {
    T g = grad[j];
    if (o.weight_decay != 0) g = g + wd * p[j];  // g ← g + λp
    if (o.momentum != 0) {
      buf[j] = first ? g : mu * buf[j] + undamped * g;  // b ← μb + (1−τ)g;  b ← g at t = 1
      g = o.nesterov ? g + mu * buf[j] : buf[j];
    }
    p[j] = p[j] - step * g;  // p ← p − lr·g
  }
}

}  // namespace

SGD::SGD(std::vector<Tensor> params, SGDOptions options)
    : Optimizer("SGD", checked(std::move(params), options), options.lr, [&] {
        std::vector<Slot> s;
        for (auto& name : slot_names(options)) s.push_back({name, false});
        return s;
      }()),
      m_options(options) {}

void SGD::update(std::size_t i, Tensor& param, const Tensor& grad) {
  const bool first = m_options.momentum != 0 && init_state(i);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    T* p = param.data<T>();
    const T* g = grad.data<T>();
    T* buf = m_options.momentum != 0 ? state(i, 0).data<T>() : nullptr;
    // Element-wise: split across threads when large (kernels/pool.hpp), the same bits at any count.
    kernels::parallel_for(param.numel(), kernels::grain_update, [&](std::size_t b, std::size_t e) {
      sgd_step<T>(p + b, g + b, buf ? buf + b : nullptr, e - b, m_options, lr(), first);
    });
  };
  if (param.dtype() == Dtype::f32)
    run(float{});
  else
    run(double{});
}

std::string SGD::str() const {
  const SGDOptions& o = m_options;
  std::string s = "SGD(lr=" + format_number(lr());
  if (o.momentum != 0) s += ", momentum=" + format_number(o.momentum);
  if (o.dampening != 0) s += ", dampening=" + format_number(o.dampening);
  if (o.nesterov) s += ", nesterov=true";
  if (o.weight_decay != 0) s += ", weight_decay=" + format_number(o.weight_decay);
  return s + ")";
}

}  // namespace rwd
