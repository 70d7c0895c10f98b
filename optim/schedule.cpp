#include "schedule.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <utility>

#include "../core/npz.hpp"  // quote_key

namespace rwd {

namespace {

// The values of exactly the keys `names` (each a one-element tensor), in that order; throws
// ValueError for a missing, unexpected or repeated key and ShapeError for a tensor of several values.
std::vector<double> read_scalars(const std::string& who, const StateDict& state,
                                 std::initializer_list<const char*> names) {
  std::vector<double> out(names.size(), 0.0);
  std::vector<bool> seen(names.size(), false);
  for (const auto& [key, value] : state) {
    std::size_t k = 0;
    for (const char* name : names) {
      if (key == name) break;
      ++k;
    }
    if (k == names.size()) {
      std::string expected;
      for (const char* name : names) expected += (expected.empty() ? "'" : ", '") + std::string(name) + "'";
      throw ValueError(who + ": unexpected key " + quote_key(key) + " (expected " + expected + ")");
    }
    if (seen[k]) throw ValueError(who + ": key '" + key + "' appears twice");
    if (!value.defined()) throw ValueError(who + ": '" + key + "' is an undefined tensor");
    if (value.numel() != 1)
      throw_shape_error(who.c_str(), {{("'" + key + "'").c_str(), value.shape()}, {"expected", Shape{}}},
                        "holds one value");
    seen[k] = true;
    out[k] = value.item();
  }
  std::size_t k = 0;
  for (const char* name : names)
    if (!seen[k++]) throw ValueError(who + ": missing key '" + name + "'");
  return out;
}

void check_count(const std::string& who, const char* key, double x) {
  if (!(std::isfinite(x) && x >= 0 && x == std::floor(x)))
    throw ValueError(who + ": '" + key + "' is " + format_number(x) + ": must be a whole number >= 0");
}

}  // namespace

// ---- LRScheduler ----

LRScheduler::LRScheduler(Optimizer& opt) : m_opt(opt), m_base_lr(opt.lr()), m_last_lr(opt.lr()) {}

void LRScheduler::step() {
  ++m_last_epoch;
  try {
    set_epoch_lr(next_lr(m_opt.lr()));
  } catch (...) {  // a LambdaLR's function threw, or the lr was refused: the step did not happen
    --m_last_epoch;
    throw;
  }
}

StateDict LRScheduler::state_dict() const {
  return {{"last_epoch", Tensor::scalar(static_cast<double>(m_last_epoch), Dtype::f64)},
          {"base_lr", Tensor::scalar(m_base_lr, Dtype::f64)}};
}

void LRScheduler::load_state_dict(const StateDict& state) {
  const std::string who = "LRScheduler.load_state_dict";
  const std::vector<double> v = read_scalars(who, state, {"last_epoch", "base_lr"});
  check_count(who, "last_epoch", v[0]);
  if (!(std::isfinite(v[1]) && v[1] >= 0))
    throw ValueError(who + ": 'base_lr' is " + format_number(v[1]) + ": must be finite and >= 0");
  m_last_epoch = static_cast<std::int64_t>(v[0]);
  m_base_lr = v[1];
  m_last_lr = m_opt.lr();
}

void LRScheduler::set_epoch_lr(double lr) {
  if (!(std::isfinite(lr) && lr >= 0))
    throw ValueError(std::string(name()) + ": the learning rate for epoch " + std::to_string(m_last_epoch) +
                     " would be " + format_number(lr) + " (from " + format_number(m_opt.lr()) +
                     "): it must be finite and >= 0");
  m_last_lr = lr;
  m_opt.set_lr(lr);
}

// ---- StepLR ----

StepLR::StepLR(Optimizer& opt, std::int64_t step_size, double gamma)
    : LRScheduler(opt), m_step_size(step_size), m_gamma(gamma) {
  check_hyper(step_size >= 1, "StepLR", "step_size", static_cast<double>(step_size), "must be >= 1");
  check_hyper(std::isfinite(gamma) && gamma >= 0, "StepLR", "gamma", gamma, "must be finite and >= 0");
}

// chainable: lr·γ when e is a multiple of step_size, else unchanged
double StepLR::next_lr(double current) const {
  return last_epoch() % m_step_size == 0 ? current * m_gamma : current;
}

// ---- ExponentialLR ----

ExponentialLR::ExponentialLR(Optimizer& opt, double gamma) : LRScheduler(opt), m_gamma(gamma) {
  check_hyper(std::isfinite(gamma) && gamma >= 0, "ExponentialLR", "gamma", gamma, "must be finite and >= 0");
}

// chainable: lr·γ
double ExponentialLR::next_lr(double current) const { return current * m_gamma; }

// ---- CosineAnnealingLR ----

CosineAnnealingLR::CosineAnnealingLR(Optimizer& opt, std::int64_t T_max, double eta_min)
    : LRScheduler(opt), m_T_max(T_max), m_eta_min(eta_min) {
  check_hyper(T_max >= 1, "CosineAnnealingLR", "T_max", static_cast<double>(T_max), "must be >= 1");
  check_hyper(std::isfinite(eta_min) && eta_min >= 0, "CosineAnnealingLR", "eta_min", eta_min,
              "must be finite and >= 0");
}

// PyTorch's chainable form: the ratio of consecutive closed-form values, applied to the current lr,
//   lr_e = η + (lr_{e−1} − η)·(1 + cos(πe/T)) / (1 + cos(π(e−1)/T)),
// except where the denominator vanishes (e − 1 ≡ T mod 2T, the bottom of the cosine): there the
// closed form's increment is added instead, lr_e = lr_{e−1} + (base − η)(1 − cos(π/T))/2.
// The exact value lies between base and η, both ≥ 0; where η > base = 0 rounding can leave −1e−17
// (PyTorch keeps it), which no optimizer takes as an lr: such a value is 0.
double CosineAnnealingLR::next_lr(double current) const {
  const double pi = std::numbers::pi, T = static_cast<double>(m_T_max), e = static_cast<double>(last_epoch());
  // e − 1 ≡ T (mod 2T): (e − 1)/T odd and exact — without forming 2T, which overflows for T > 2^62
  const std::int64_t d = last_epoch() - 1;
  if (d % m_T_max == 0 && (d / m_T_max) % 2 == 1)
    return std::max(0.0, current + (base_lr() - m_eta_min) * (1 - std::cos(pi / T)) / 2);
  const double ratio = (1 + std::cos(pi * e / T)) / (1 + std::cos(pi * (e - 1) / T));
  return std::max(0.0, ratio * (current - m_eta_min) + m_eta_min);
}

// ---- MultiStepLR ----

MultiStepLR::MultiStepLR(Optimizer& opt, std::vector<std::int64_t> milestones, double gamma)
    : LRScheduler(opt), m_milestones(std::move(milestones)), m_gamma(gamma) {
  for (std::int64_t m : m_milestones)
    check_hyper(m >= 1, "MultiStepLR", "milestone", static_cast<double>(m),
                "must be >= 1 (epoch 0 is the construction; step() reaches 1 first)");
  check_hyper(std::isfinite(gamma) && gamma >= 0, "MultiStepLR", "gamma", gamma, "must be finite and >= 0");
  std::sort(m_milestones.begin(), m_milestones.end());
}

// chainable: lr·γ^k where e is a milestone given k times (PyTorch's Counter), else unchanged
double MultiStepLR::next_lr(double current) const {
  const auto [lo, hi] = std::equal_range(m_milestones.begin(), m_milestones.end(), last_epoch());
  if (lo == hi) return current;
  return current * std::pow(m_gamma, static_cast<double>(hi - lo));  // PyTorch: lr * gamma ** k
}

// ---- LinearLR ----

LinearLR::LinearLR(Optimizer& opt, double start_factor, double end_factor, std::int64_t total_iters)
    : LRScheduler(opt), m_start(start_factor), m_end(end_factor), m_total_iters(total_iters) {
  check_hyper(start_factor > 0 && start_factor <= 1, "LinearLR", "start_factor", start_factor, "must be in (0, 1]");
  check_hyper(end_factor >= 0 && end_factor <= 1, "LinearLR", "end_factor", end_factor, "must be in [0, 1]");
  check_hyper(total_iters >= 1, "LinearLR", "total_iters", static_cast<double>(total_iters), "must be >= 1");
  set_epoch_lr(opt.lr() * start_factor);
}

// PyTorch's chainable form: the ratio of consecutive closed-form factors, applied to the current lr,
//   lr_e = lr_{e−1} · (1 + (f − s) / (T·s + (e − 1)·(f − s)))   for 1 ≤ e ≤ T, unchanged after.
// The denominator is s·(T − e + 1) + (e − 1)·f > 0 for e ≤ T, as s > 0 and f ≥ 0.
double LinearLR::next_lr(double current) const {
  if (last_epoch() > m_total_iters) return current;
  const double T = static_cast<double>(m_total_iters), e = static_cast<double>(last_epoch());
  return current * (1. + (m_end - m_start) / (T * m_start + (e - 1) * (m_end - m_start)));
}

// ---- LambdaLR ----

LambdaLR::LambdaLR(Optimizer& opt, std::function<double(std::size_t)> factor)
    : LRScheduler(opt), m_factor(std::move(factor)) {
  if (!m_factor) throw ValueError("LambdaLR: the factor function is empty");
  set_epoch_lr(base_lr() * m_factor(0));
}

// not chainable (PyTorch's get_lr): base_lr·λ(e), whatever the current lr
double LambdaLR::next_lr(double) const { return base_lr() * m_factor(static_cast<std::size_t>(last_epoch())); }

// ---- ReduceLROnPlateau ----

ReduceLROnPlateau::ReduceLROnPlateau(Optimizer& opt, PlateauOptions o)
    : m_opt(opt), m_options(o), m_best(o.maximize ? -INFINITY : INFINITY) {
  check_hyper(o.factor >= 0 && o.factor < 1, "ReduceLROnPlateau", "factor", o.factor, "must be in [0, 1)");
  check_hyper(o.patience >= 0, "ReduceLROnPlateau", "patience", static_cast<double>(o.patience), "must be >= 0");
  check_hyper(o.cooldown >= 0, "ReduceLROnPlateau", "cooldown", static_cast<double>(o.cooldown), "must be >= 0");
  check_hyper(o.threshold >= 0, "ReduceLROnPlateau", "threshold", o.threshold, "must be >= 0");
  // (an infinite min_lr would pass here and fail at the first reduction, in the optimizer's set_lr)
  check_hyper(std::isfinite(o.min_lr) && o.min_lr >= 0, "ReduceLROnPlateau", "min_lr", o.min_lr,
              "must be finite and >= 0");
  check_hyper(o.eps >= 0, "ReduceLROnPlateau", "eps", o.eps, "must be >= 0");
}

bool ReduceLROnPlateau::is_better(double a) const {
  const PlateauOptions& o = m_options;
  if (!o.maximize) return o.relative_threshold ? a < m_best * (1 - o.threshold) : a < m_best - o.threshold;
  return o.relative_threshold ? a > m_best * (o.threshold + 1) : a > m_best + o.threshold;
}

void ReduceLROnPlateau::step(double metric) {
  ++m_last_epoch;
  if (is_better(metric)) {
    m_best = metric;
    m_num_bad_epochs = 0;
  } else {
    ++m_num_bad_epochs;
  }
  if (m_cooldown_counter > 0) {  // in cooldown: bad epochs do not count
    --m_cooldown_counter;
    m_num_bad_epochs = 0;
  }
  if (m_num_bad_epochs > m_options.patience) {
    const double old_lr = m_opt.lr();
    const double new_lr = std::max(old_lr * m_options.factor, m_options.min_lr);
    if (old_lr - new_lr > m_options.eps) m_opt.set_lr(new_lr);
    m_cooldown_counter = m_options.cooldown;
    m_num_bad_epochs = 0;
  }
}

StateDict ReduceLROnPlateau::state_dict() const {
  auto f64 = [](double x) { return Tensor::scalar(x, Dtype::f64); };
  return {{"last_epoch", f64(static_cast<double>(m_last_epoch))},
          {"best", f64(m_best)},
          {"num_bad_epochs", f64(static_cast<double>(m_num_bad_epochs))},
          {"cooldown_counter", f64(static_cast<double>(m_cooldown_counter))}};
}

void ReduceLROnPlateau::load_state_dict(const StateDict& state) {
  const std::string who = "ReduceLROnPlateau.load_state_dict";
  const std::vector<double> v = read_scalars(who, state, {"last_epoch", "best", "num_bad_epochs", "cooldown_counter"});
  check_count(who, "last_epoch", v[0]);
  check_count(who, "num_bad_epochs", v[2]);
  check_count(who, "cooldown_counter", v[3]);
  if (std::isnan(v[1])) throw ValueError(who + ": 'best' is nan");
  m_last_epoch = static_cast<std::int64_t>(v[0]);
  m_best = v[1];
  m_num_bad_epochs = static_cast<std::int64_t>(v[2]);
  m_cooldown_counter = static_cast<std::int64_t>(v[3]);
}

}  // namespace rwd
