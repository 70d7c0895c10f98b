#include "schedule.hpp"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <numbers>
#include <utility>

#include "../core/npz.hpp"  // quote_key

namespace rwd {

namespace {

// The tensors of exactly the keys `names`, in that order; throws ValueError for a missing, unexpected
// or repeated key or an undefined tensor, naming `who` and the key.
std::vector<Tensor> read_keys(const std::string& who, const StateDict& state, const std::vector<std::string>& names) {
  std::vector<Tensor> out(names.size());
  for (const auto& [key, value] : state) {
    const std::size_t k = static_cast<std::size_t>(std::find(names.begin(), names.end(), key) - names.begin());
    if (k == names.size()) {
      std::string expected;
      for (const std::string& name : names) expected += (expected.empty() ? "'" : ", '") + name + "'";
      throw ValueError(who + ": unexpected key " + quote_key(key) + " (expected " + expected +
                       "; a state saved by another kind of schedule?)");
    }
    if (out[k].defined()) throw ValueError(who + ": key " + quote_key(key) + " appears twice");
    if (!value.defined()) throw ValueError(who + ": " + quote_key(key) + " is an undefined tensor");
    out[k] = value;
  }
  for (std::size_t k = 0; k < names.size(); ++k)
    if (!out[k].defined()) throw ValueError(who + ": missing key '" + names[k] + "'");
  return out;
}

double scalar_of(const std::string& who, const std::string& key, const Tensor& value) {
  if (value.numel() != 1)
    throw_shape_error(who.c_str(), {{("'" + key + "'").c_str(), value.shape()}, {"expected", Shape{}}},
                      "holds one value");
  return value.item();
}

// A count saved as a float64: a whole number in [0, 2^53] (so that the int64 it becomes is exact).
std::int64_t count_of(const std::string& who, const std::string& key, const Tensor& value) {
  const double x = scalar_of(who, key, value);
  if (!(std::isfinite(x) && x >= 0 && x <= 9007199254740992.0 && x == std::floor(x)))
    throw ValueError(who + ": '" + key + "' is " + format_number(x) + ": must be a whole number >= 0 (at most 2^53)");
  return static_cast<std::int64_t>(x);
}

double rate_of(const std::string& who, const std::string& key, const Tensor& value) {
  const double x = scalar_of(who, key, value);
  if (!(std::isfinite(x) && x >= 0)) throw ValueError(who + ": '" + key + "' is " + format_number(x) + ": must be finite and >= 0");
  return x;
}

Tensor f64(double x) { return Tensor::scalar(x, Dtype::f64); }

// Whether `state` holds none of `keys`: a state saved before schedules saved their last lr and their
// configuration (session 14) — loaded as then, with nothing to check the configuration against.
bool holds_none(const StateDict& state, const StateDict& keys, std::initializer_list<const char*> more = {}) {
  for (const auto& [key, value] : state) {
    for (const auto& [k, v] : keys)
      if (key == k) return false;
    for (const char* k : more)
      if (key == k) return false;
  }
  return true;
}

// The saved configuration `saved` against this schedule's `now` (same keys, in order): a schedule
// resumes only as the one it was saved from, or it would go on along another curve without a word.
// (PyTorch's load_state_dict instead overwrites the configuration with the saved one.)
void check_config(const std::string& who, const StateDict& now, const std::vector<Tensor>& saved, std::size_t first) {
  for (std::size_t k = 0; k < now.size(); ++k) {
    const auto& [key, mine] = now[k];
    const Tensor& theirs = saved[first + k];
    const bool same = theirs.shape() == mine.shape() && theirs.to_vector() == mine.to_vector();
    if (same) continue;
    auto show = [](const Tensor& t) {
      if (t.numel() == 1 && t.ndim() == 0) return format_number(t.item());
      std::string out = "[";
      const std::vector<double> v = t.to_vector();
      for (std::size_t i = 0; i < v.size() && i < 20; ++i) out += (i ? ", " : "") + format_number(v[i]);
      return out + (v.size() > 20 ? ", …]" : "]");
    };
    throw ValueError(who + ": '" + key + "' is " + show(theirs) + " in the saved state but " + show(mine) +
                     " in this schedule: a schedule resumes only with the configuration it was saved with");
  }
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
  StateDict out{{"last_epoch", f64(static_cast<double>(m_last_epoch))},
                {"base_lr", f64(m_base_lr)},
                {"last_lr", f64(m_last_lr)}};
  for (auto& entry : config()) out.push_back(std::move(entry));
  return out;
}

void LRScheduler::load_state_dict(const StateDict& state) {
  const std::string who = std::string(name()) + ".load_state_dict";
  const StateDict now = config();
  if (holds_none(state, now, {"last_lr"})) {  // an earlier version's state: the lr is the optimizer's
    const std::vector<Tensor> v = read_keys(who, state, {"last_epoch", "base_lr"});
    const std::int64_t last_epoch = count_of(who, "last_epoch", v[0]);
    const double base_lr = rate_of(who, "base_lr", v[1]);
    m_last_epoch = last_epoch;
    m_base_lr = base_lr;
    m_last_lr = m_opt.lr();
    return;
  }
  std::vector<std::string> names{"last_epoch", "base_lr", "last_lr"};
  for (const auto& [key, value] : now) names.push_back(key);
  const std::vector<Tensor> v = read_keys(who, state, names);
  const std::int64_t last_epoch = count_of(who, "last_epoch", v[0]);
  const double base_lr = rate_of(who, "base_lr", v[1]), last_lr = rate_of(who, "last_lr", v[2]);
  check_config(who, now, v, 3);
  m_last_epoch = last_epoch;
  m_base_lr = base_lr;
  m_last_lr = last_lr;
}

StateDict LRScheduler::config() const { return {}; }

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

StateDict StepLR::config() const {
  return {{"step_size", f64(static_cast<double>(m_step_size))}, {"gamma", f64(m_gamma)}};
}

// chainable: lr·γ when e is a multiple of step_size, else unchanged
double StepLR::next_lr(double current) const {
  return last_epoch() % m_step_size == 0 ? current * m_gamma : current;
}

// ---- ExponentialLR ----

ExponentialLR::ExponentialLR(Optimizer& opt, double gamma) : LRScheduler(opt), m_gamma(gamma) {
  check_hyper(std::isfinite(gamma) && gamma >= 0, "ExponentialLR", "gamma", gamma, "must be finite and >= 0");
}

StateDict ExponentialLR::config() const { return {{"gamma", f64(m_gamma)}}; }

// chainable: lr·γ
double ExponentialLR::next_lr(double current) const { return current * m_gamma; }

// ---- CosineAnnealingLR ----

CosineAnnealingLR::CosineAnnealingLR(Optimizer& opt, std::int64_t T_max, double eta_min)
    : LRScheduler(opt), m_T_max(T_max), m_eta_min(eta_min) {
  check_hyper(T_max >= 1, "CosineAnnealingLR", "T_max", static_cast<double>(T_max), "must be >= 1");
  check_hyper(std::isfinite(eta_min) && eta_min >= 0, "CosineAnnealingLR", "eta_min", eta_min,
              "must be finite and >= 0");
}

StateDict CosineAnnealingLR::config() const {
  return {{"T_max", f64(static_cast<double>(m_T_max))}, {"eta_min", f64(m_eta_min)}};
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

StateDict MultiStepLR::config() const {
  std::vector<double> m(m_milestones.begin(), m_milestones.end());
  return {{"milestones", Tensor::from_vector(m, {m.size()}, Dtype::f64)}, {"gamma", f64(m_gamma)}};
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

StateDict LinearLR::config() const {
  return {{"start_factor", f64(m_start)},
          {"end_factor", f64(m_end)},
          {"total_iters", f64(static_cast<double>(m_total_iters))}};
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

StateDict ReduceLROnPlateau::config() const {
  const PlateauOptions& o = m_options;
  return {{"maximize", f64(o.maximize ? 1 : 0)},
          {"factor", f64(o.factor)},
          {"patience", f64(static_cast<double>(o.patience))},
          {"threshold", f64(o.threshold)},
          {"relative_threshold", f64(o.relative_threshold ? 1 : 0)},
          {"cooldown", f64(static_cast<double>(o.cooldown))},
          {"min_lr", f64(o.min_lr)},
          {"eps", f64(o.eps)}};
}

StateDict ReduceLROnPlateau::state_dict() const {
  StateDict out{{"last_epoch", f64(static_cast<double>(m_last_epoch))},
                {"best", f64(m_best)},
                {"num_bad_epochs", f64(static_cast<double>(m_num_bad_epochs))},
                {"cooldown_counter", f64(static_cast<double>(m_cooldown_counter))}};
  for (auto& entry : config()) out.push_back(std::move(entry));
  return out;
}

void ReduceLROnPlateau::load_state_dict(const StateDict& state) {
  const std::string who = "ReduceLROnPlateau.load_state_dict";
  const StateDict now = config();
  std::vector<std::string> names{"last_epoch", "best", "num_bad_epochs", "cooldown_counter"};
  const bool earlier = holds_none(state, now);  // an earlier version's state: no configuration to check
  if (!earlier)
    for (const auto& [key, value] : now) names.push_back(key);
  const std::vector<Tensor> v = read_keys(who, state, names);
  const std::int64_t last_epoch = count_of(who, "last_epoch", v[0]);
  const double best = scalar_of(who, "best", v[1]);
  const std::int64_t bad = count_of(who, "num_bad_epochs", v[2]), cooldown = count_of(who, "cooldown_counter", v[3]);
  if (std::isnan(best)) throw ValueError(who + ": 'best' is nan");
  if (!earlier) check_config(who, now, v, 4);
  // A step leaves at most `patience` bad epochs and at most `cooldown` epochs of cooldown behind it.
  if (bad > m_options.patience)
    throw ValueError(who + ": 'num_bad_epochs' is " + std::to_string(bad) + ", more than patience (" +
                     std::to_string(m_options.patience) + "): no step leaves that many");
  if (cooldown > m_options.cooldown)
    throw ValueError(who + ": 'cooldown_counter' is " + std::to_string(cooldown) + ", more than cooldown (" +
                     std::to_string(m_options.cooldown) + "): no step leaves that many");
  m_last_epoch = last_epoch;
  m_best = best;
  m_num_bad_epochs = bad;
  m_cooldown_counter = cooldown;
}

}  // namespace rwd
