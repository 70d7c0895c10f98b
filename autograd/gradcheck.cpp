// Gradient checking by central differences. See gradcheck.hpp for what is checked and how.
#include "gradcheck.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ostream>

#include "../core/detail/impl.hpp"
#include "../kernels/copy.hpp"
#include "backward.hpp"
#include "ops.hpp"
#include "tape.hpp"

namespace rwd {

namespace {

// Promotes the float32 inputs to float64 in place for the duration of a check, restoring their
// values and gradients afterwards — also when the checked function throws.
class Promotion {
 public:
  explicit Promotion(const std::vector<Tensor>& inputs) {
    for (const Tensor& t : inputs) {
      detail::TensorImpl& p = t.impl();
      if (p.dtype() != Dtype::f32) continue;
      Tensor promoted = kernels::cast("gradcheck", t, Dtype::f64);
      // Moved aside, not copied: restored, an input that is a view still shares its base's storage.
      m_saved.push_back({t, std::move(p.value), p.grad});
      p.value = std::move(promoted.impl().value);
      p.grad = Tensor();
    }
  }
  ~Promotion() {
    for (Saved& s : m_saved) {
      detail::TensorImpl& p = *s.tensor.impl_ptr();
      p.value = std::move(s.value);
      p.grad = std::move(s.grad);
    }
  }
  /// Whether any input was promoted.
  bool promoted() const { return !m_saved.empty(); }
  Promotion(const Promotion&) = delete;
  Promotion& operator=(const Promotion&) = delete;

 private:
  struct Saved {
    Tensor tensor;
    std::variant<detail::Array<float>, detail::Array<double>> value;
    Tensor grad;
  };
  std::vector<Saved> m_saved;
};

// Σ y⊙w: an asymmetric scalarization, so that wᵀJ exposes any wrong, transposed or permuted entry.
// w is drawn once per check (uniform in ±[0.5, 1.5)) and reused by every evaluation.
Tensor scalarize(const Tensor& y, Tensor& w, std::uint32_t seed) {
  if (!y.defined()) throw ValueError("gradcheck: the function returned an undefined tensor");
  if (y.numel() == 1) return sum(y);
  if (!w.defined()) {
    Generator gen(seed);
    std::vector<double> v(y.numel());
    for (double& x : v) x = (gen.uniform() < 0.5 ? -1.0 : 1.0) * gen.uniform(0.5, 1.5);
    w = Tensor::from_vector(v, y.shape(), Dtype::f64);
  }
  if (w.shape() != y.shape())
    throw_shape_error("gradcheck", {{"first output", w.shape()}, {"later output", y.shape()}},
                      "the function must return the same shape on every call");
  return sum(y * w.to(y.dtype()));
}

// The tape's gradients of the scalarized f, as flat float64 vectors (zeros where unreachable).
std::vector<std::vector<double>> analytic(const TensorFunction& f, const std::vector<Tensor>& inputs,
                                          const std::vector<Tensor>& checked, Tensor& w, std::uint32_t seed,
                                          double* value) {
  Tape tape;
  EnableGradGuard grad_mode;
  Tensor L = scalarize(f(inputs), w, seed);
  if (value) *value = L.item();
  std::vector<std::vector<double>> out;
  std::vector<Tensor> g;
  if (L.requires_grad()) g = grad({L}, checked, {}, {}, /*allow_unused=*/true);
  for (std::size_t i = 0; i < checked.size(); ++i)
    out.push_back(i < g.size() && g[i].defined() ? g[i].to_vector() : std::vector<double>(checked[i].numel(), 0.0));
  return out;
}

double evaluate(const TensorFunction& f, const std::vector<Tensor>& inputs, Tensor& w, std::uint32_t seed) {
  Tape tape;  // whatever f records is dropped with this scope
  return scalarize(f(inputs), w, seed).item();
}

std::vector<std::size_t> unravel(std::size_t flat, const Shape& shape) {
  std::vector<std::size_t> index(shape.ndim());
  for (std::size_t d = shape.ndim(); d-- > 0;) {
    index[d] = shape[d] ? flat % shape[d] : 0;
    flat = shape[d] ? flat / shape[d] : 0;
  }
  return index;
}

double norm(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x * x;
  return std::sqrt(s);
}

std::string fmt(double v, const char* format = "%.4g") {
  char buf[32];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

// "#14 t=2 my_softplus", as the teaching views name an entry.
std::string entry_name(const Tape& tape, std::size_t i) {
  const Node& n = tape[i];
  const std::int64_t t = tape.step_of(i);
  return "#" + std::to_string(i) + (n.output.name().empty() ? "" : ":" + n.output.name()) +
         (t >= 0 ? " t=" + std::to_string(t) : "") + " " + n.op;
}

// The scalarized f with entry `entry`'s output nudged by `delta` at `element` as it is recorded.
double evaluate_nudged(const TensorFunction& f, const std::vector<Tensor>& inputs, Tensor& w, std::uint32_t seed,
                       std::int64_t entry, std::size_t element, double delta) {
  Tape tape;  // a fresh tape: f records the same entries, at the same indices, as in locate()
  EnableGradGuard grad_mode;
  const Tape::OutputProbe probe{entry, element, delta};
  tape.set_output_probe(&probe);
  return scalarize(f(inputs), w, seed).item();
}

// Where the wrong gradient of `leaf` comes from (gradcheck.hpp, "Which op"): the entries that use
// it, and the first entries on the way to the output whose received adjoint passes a finite-difference
// check — the error enters at their backward.
void locate(const TensorFunction& f, const std::vector<Tensor>& inputs, const Tensor& leaf, Tensor& w,
            const GradcheckOptions& options, InputReport& report) {
  Tape tape;
  EnableGradGuard grad_mode;
  const Tensor L = scalarize(f(inputs), w, options.seed);
  if (!L.requires_grad()) return;
  const std::vector<Tensor> targets{leaf};
  ReverseSweep sweep({L}, {Tensor()}, SweepOptions{.retain = true, .keep_adjoints = true}, &targets);
  sweep.run();
  const SweepTrace* trace = sweep.trace();
  // Entry i's users: the entries that read one of its outputs.
  std::vector<std::vector<std::size_t>> users(tape.size());
  std::vector<std::size_t> leaf_users;
  for (std::size_t k = 0; k < tape.size(); ++k)
    for (const Tensor& x : tape[k].inputs) {
      if (x.same(leaf) && (leaf_users.empty() || leaf_users.back() != k)) leaf_users.push_back(k);
      const std::int64_t j = x.tape_index();
      if (j >= 0 && x.impl().tape == &tape && (users[j].empty() || users[j].back() != k)) users[j].push_back(k);
    }
  for (std::size_t k : leaf_users) report.used_by.push_back(entry_name(tape, k));

  // Does entry c's received adjoint match a finite difference through its output? A few elements:
  // the largest adjoints (where a wrong rule shows most) and some spread over the rest.
  std::size_t budget = 1000;  // evaluations of f
  auto adjoint_right = [&](std::size_t c) {
    const Tensor& out = tape[c].output;
    const EntryTrace* t = trace ? trace->at(c) : nullptr;
    const std::vector<double> a = t && t->adjoints[0].defined() ? t->adjoints[0].to(Dtype::f64).to_vector()
                                                               : std::vector<double>(out.numel(), 0.0);
    std::vector<std::size_t> order(a.size());
    for (std::size_t e = 0; e < order.size(); ++e) order[e] = e;
    const std::size_t n = std::min<std::size_t>(order.size(), 8);
    std::partial_sort(order.begin(), order.begin() + n, order.end(),
                      [&](std::size_t x, std::size_t y) { return std::abs(a[x]) > std::abs(a[y]); });
    std::vector<std::size_t> elements(order.begin(), order.begin() + n);
    for (std::size_t e = 0; e < a.size() && elements.size() < 16; e += std::max<std::size_t>(a.size() / 8, 1))
      if (std::find(elements.begin(), elements.end(), e) == elements.end()) elements.push_back(e);
    for (std::size_t e : elements) {
      if (budget < 2) return true;  // out of budget: stop here, say nothing more
      budget -= 2;
      const auto idx = static_cast<std::int64_t>(c);
      const double numeric = (evaluate_nudged(f, inputs, w, options.seed, idx, e, options.eps) -
                              evaluate_nudged(f, inputs, w, options.seed, idx, e, -options.eps)) /
                             (2 * options.eps);
      if (!(std::abs(a[e] - numeric) <= options.atol + options.rtol * std::abs(numeric))) return false;
    }
    return true;
  };
  // A value whose adjoint is wrong, read only by entries whose adjoints are right: a correct backward
  // of each would sum to a right adjoint, so at least one of theirs is wrong — they are the suspects.
  // A user with a wrong adjoint of its own is followed instead (the error may come from further on).
  // A view can't be nudged apart from its base: it is followed as if wrong.
  std::vector<int> verdict(tape.size(), -1);  // −1 not checked, 0 wrong, 1 right
  std::vector<bool> followed(tape.size(), false), suspect(tape.size(), false);
  std::vector<const std::vector<std::size_t>*> wrong_values{&leaf_users};  // each value found wrong, as its readers
  while (!wrong_values.empty() && budget >= 2) {
    const std::vector<std::size_t>& readers = *wrong_values.back();
    wrong_values.pop_back();
    bool all_right = !readers.empty();
    for (std::size_t c : readers) {
      if (verdict[c] < 0) {
        const Tensor& out = tape[c].output;
        const bool nudgeable = out.dtype() == Dtype::f64 && !out.is_view() && out.numel() > 0;
        verdict[c] = nudgeable && adjoint_right(c) ? 1 : 0;
      }
      if (verdict[c] == 0) {
        all_right = false;
        if (!followed[c]) {
          followed[c] = true;
          wrong_values.push_back(&users[c]);
        }
      }
    }
    if (all_right)
      for (std::size_t c : readers) suspect[c] = true;
  }
  for (std::size_t c = 0; c < tape.size(); ++c)
    if (suspect[c]) report.suspects.push_back(entry_name(tape, c));
}

// A central difference nudges one element of one input; if another input's values lie in the same
// memory (a leaf view of it, made under NoGradGuard), the nudge moves that input too, and the
// difference measures both paths while the tape's gradient is one input's alone: a false failure (or,
// for a fixed input, a wrong numeric gradient). Such inputs are refused. Views of one storage whose
// runs do not meet are independent, and the same tensor passed twice is one variable (its gradient and
// its difference both the total): both are checked as usual.
void refuse_overlapping(const std::vector<Tensor>& inputs) {
  auto run = [](const Tensor& t) {  // [first, last) byte of t's values
    const char* p = t.dtype() == Dtype::f32 ? reinterpret_cast<const char*>(t.data<float>())
                                            : reinterpret_cast<const char*>(t.data<double>());
    return std::pair{p, p + t.numel() * dtype_size(t.dtype())};
  };
  for (std::size_t i = 0; i < inputs.size(); ++i)
    for (std::size_t j = i + 1; j < inputs.size(); ++j) {
      const Tensor &a = inputs[i], &b = inputs[j];
      if (a.same(b) || a.numel() == 0 || b.numel() == 0 || !a.shares_storage(b)) continue;
      const auto [a0, a1] = run(a);
      const auto [b0, b1] = run(b);
      if (a0 < b1 && b0 < a1)
        throw ValueError("gradcheck: inputs " + std::to_string(i) + " and " + std::to_string(j) + " (" +
                         (a.name().empty() ? "unnamed" : a.name()) + " " + a.shape().str() + ", " +
                         (b.name().empty() ? "unnamed" : b.name()) + " " + b.shape().str() +
                         ") share values in memory (one is a view of the other): a finite-difference nudge of one "
                         "would move both; pass one of them, or a detach()ed copy");
    }
}

// Options that cannot give a verdict are refused up front: with eps 0 or NaN every central difference
// is NaN and every element "fails", a negative or NaN tolerance fails everything, an infinite one
// passes everything — each a report that looks like a finding about the function.
void check_options(const char* what, const GradcheckOptions& o) {
  auto bad = [&](const char* name, double v, const char* rule) {
    throw ValueError(std::string(what) + ": option " + name + " is " + fmt(v, "%g") + "; it must be " + rule);
  };
  if (!(std::isfinite(o.eps) && o.eps > 0)) bad("eps", o.eps, "finite and > 0");
  const std::pair<const char*, double> tolerances[] = {
      {"atol", o.atol}, {"rtol", o.rtol}, {"float32_atol", o.float32_atol}, {"float32_rtol", o.float32_rtol}};
  for (const auto& [name, v] : tolerances)
    if (!(std::isfinite(v) && v >= 0)) bad(name, v, "finite and >= 0");
}

}  // namespace

GradcheckReport gradcheck(const TensorFunction& f, const std::vector<Tensor>& inputs, GradcheckOptions options) {
  check_options("gradcheck", options);
  GradcheckReport report;
  report.options = options;
  std::vector<Tensor> checked;
  std::vector<std::size_t> position;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) throw ValueError("gradcheck: input " + std::to_string(i) + " is an undefined tensor");
    if (!inputs[i].is_leaf())
      throw ValueError("gradcheck: input " + std::to_string(i) + " is not a leaf (it was recorded by '" +
                       std::string((*inputs[i].impl().tape)[static_cast<std::size_t>(inputs[i].tape_index())].op) +
                       "'); pass parameters and inputs, not intermediates");
    if (inputs[i].requires_grad()) {
      checked.push_back(inputs[i]);
      position.push_back(i);
    }
  }
  if (checked.empty()) throw ValueError("gradcheck: no input requires a gradient; mark them with set_requires_grad()");
  refuse_overlapping(inputs);

  Tensor w;
  // A float32 model: its own gradients first, to compare with the float64 shadow below.
  bool any_f32 = false;
  for (const Tensor& t : inputs) any_f32 = any_f32 || t.dtype() == Dtype::f32;
  std::vector<std::vector<double>> g32;
  if (any_f32) g32 = analytic(f, inputs, checked, w, options.seed, nullptr);
  std::vector<bool> was_f32;
  for (const Tensor& t : checked) was_f32.push_back(t.dtype() == Dtype::f32);

  Promotion promotion(inputs);
  // A float32 tensor the function uses but gradcheck was not given stays float32 and meets the
  // promoted float64 inputs: the op's DtypeError alone would not say why there is a float64 at all.
  TensorFunction checked_f = f;
  if (promotion.promoted())
    checked_f = [&f](const std::vector<Tensor>& in) {
      try {
        return f(in);
      } catch (const DtypeError& e) {
        throw DtypeError(std::string(e.what()) +
                         " — inside gradcheck, which runs the function in float64: its float32 inputs were "
                         "promoted in place for the check (and are restored afterwards); a float32 tensor the "
                         "function uses must be among gradcheck's inputs, or be converted with .to(float64)");
      }
    };
  const std::vector<std::vector<double>> g = analytic(checked_f, inputs, checked, w, options.seed, &report.value);
  // A central difference compares f at two points; a function that gives another value at the SAME
  // point (a fresh random draw, a counter, a state it updates) would fail every element and the
  // report would blame its gradient. So f is evaluated once more where the tape's gradient was taken.
  {
    EnableGradGuard grad_mode;  // as analytic() ran it: the same kernels, so the same bits
    const double again = evaluate(checked_f, inputs, w, options.seed);
    if (!(again == report.value || (std::isnan(again) && std::isnan(report.value))))
      throw ValueError("gradcheck: the function is not deterministic: evaluated twice at the same inputs it gave " +
                       fmt(report.value, "%.17g") + " and " + fmt(again, "%.17g") +
                       " (a random draw, or state that changes between calls); finite differences need the same "
                       "value from the same inputs — fix its generator's seed inside the function");
  }

  for (std::size_t k = 0; k < checked.size(); ++k) {
    Tensor x = checked[k];
    InputReport r;
    r.name = x.name().empty() ? "input " + std::to_string(position[k]) : x.name();
    r.shape = x.shape();
    r.was_float32 = was_f32[k];
    r.n_checked = x.numel();
    double* data = x.data<double>();
    std::vector<ElementError> errors;
    for (std::size_t e = 0; e < x.numel(); ++e) {
      // Central difference: (L(x + ε) − L(x − ε)) / 2ε, one element at a time.
      const double x0 = data[e];
      data[e] = x0 + options.eps;
      const double plus = evaluate(checked_f, inputs, w, options.seed);
      data[e] = x0 - options.eps;
      const double minus = evaluate(checked_f, inputs, w, options.seed);
      data[e] = x0;
      ElementError err;
      err.value = x0;
      err.numeric = (plus - minus) / (2 * options.eps);
      err.analytic = g[k][e];
      err.abs_err = std::abs(err.analytic - err.numeric);
      const double scale = std::max(std::abs(err.analytic), std::abs(err.numeric));
      err.rel_err = scale > 0 ? err.abs_err / scale : 0.0;
      r.max_abs_err = std::max(r.max_abs_err, err.abs_err);
      r.max_rel_err = std::max(r.max_rel_err, err.rel_err);
      if (!(err.abs_err <= options.atol + options.rtol * std::abs(err.numeric))) ++r.n_failed;  // NaN fails too
      err.index = unravel(e, r.shape);
      errors.push_back(std::move(err));
    }
    std::stable_sort(errors.begin(), errors.end(), [](const ElementError& a, const ElementError& b) {
      return a.abs_err > b.abs_err || (std::isnan(a.abs_err) && !std::isnan(b.abs_err));
    });
    errors.resize(std::min(errors.size(), options.worst));
    r.worst = std::move(errors);
    if (r.n_failed) locate(checked_f, inputs, x, w, options, r);
    if (r.was_float32) {
      std::vector<double> diff(g[k].size());
      for (std::size_t e = 0; e < diff.size(); ++e) diff[e] = g32[k][e] - g[k][e];
      const double scale = norm(g[k]);
      r.float32_rel_diff = scale > 0 ? norm(diff) / scale : norm(diff);
      r.float32_ok = norm(diff) <= options.float32_atol + options.float32_rtol * scale;
    }
    report.inputs.push_back(std::move(r));
  }
  return report;
}

GradcheckReport gradgradcheck(const TensorFunction& f, const std::vector<Tensor>& inputs, GradcheckOptions options) {
  check_options("gradgradcheck", options);
  std::vector<Tensor> checked;
  for (const Tensor& t : inputs)
    if (t.requires_grad()) checked.push_back(t);
  // Fixed random directions v, one per checked input: G(x) = Σᵢ ⟨∂L/∂xᵢ, vᵢ⟩, whose gradient is Hv.
  Generator gen(options.seed + 1);
  std::vector<Tensor> v;
  for (const Tensor& t : checked) v.push_back(Tensor::uniform(t.shape(), -1.0, 1.0, gen, Dtype::f64));
  Tensor w;
  const std::uint32_t seed = options.seed;
  TensorFunction first_order = [&](const std::vector<Tensor>& in) {
    Tensor L = scalarize(f(in), w, seed);
    Tensor G = Tensor::scalar(0.0, L.dtype());
    if (!L.requires_grad()) return G;
    std::vector<Tensor> g = grad({L}, checked, {}, SweepOptions{.create_graph = true}, /*allow_unused=*/true);
    for (std::size_t i = 0; i < g.size(); ++i)
      if (g[i].defined()) G = G + sum(g[i] * v[i].to(g[i].dtype()));
    return G;
  };
  GradcheckReport report = gradcheck(first_order, inputs, options);
  report.what = "gradgradcheck";
  return report;
}

bool GradcheckReport::ok() const {
  for (const InputReport& r : inputs)
    if (!r.ok()) return false;
  return !inputs.empty();
}

std::string GradcheckReport::str() const {
  std::size_t bad = 0, elements = 0;
  for (const InputReport& r : inputs) {
    bad += r.ok() ? 0 : 1;
    elements += r.n_checked;
  }
  std::string s = what + (ok() ? ": passed — " : ": FAILED — ");
  s += ok() ? std::to_string(inputs.size()) + " input" + (inputs.size() == 1 ? "" : "s") + ", " +
                  std::to_string(elements) + " elements"
            : std::to_string(bad) + " of " + std::to_string(inputs.size()) + " inputs have wrong gradients";
  s += " (float64 central differences, eps " + fmt(options.eps) + ", atol " + fmt(options.atol) + ", rtol " +
       fmt(options.rtol) + ")\n";
  for (const InputReport& r : inputs) {
    s += "  " + std::string(r.n_failed ? "FAIL " : "ok   ") + r.name + " " + r.shape.str() + ": ";
    if (r.n_failed) s += std::to_string(r.n_failed) + " of " + std::to_string(r.n_checked) + " elements fail; ";
    s += "max abs err " + fmt(r.max_abs_err) + ", max rel err " + fmt(r.max_rel_err) + "\n";
    if (r.n_failed)
      for (const ElementError& e : r.worst) {
        std::string idx = "[";
        for (std::size_t d = 0; d < e.index.size(); ++d) idx += (d ? ", " : "") + std::to_string(e.index[d]);
        s += "         at " + idx + "] (value " + fmt(e.value) + "): analytic " + fmt(e.analytic) + ", numeric " + fmt(e.numeric) + " (abs err " +
             fmt(e.abs_err) + ")\n";
      }
    auto list = [](const std::vector<std::string>& names) {
      std::string out;
      for (std::size_t i = 0; i < names.size() && i < 8; ++i) out += (i ? ", " : "") + names[i];
      return names.size() > 8 ? out + " and " + std::to_string(names.size() - 8) + " more" : out;
    };
    if (!r.used_by.empty()) s += "         used by " + list(r.used_by) + "\n";
    if (!r.suspects.empty())
      s += "         the error enters at " + list(r.suspects) +
           (r.suspects.size() == 1 ? ": the adjoint it receives checks out, what its backward sends on does not\n"
                                   : ": the adjoints they receive check out, what one of their backwards sends on does not\n");
    if (r.was_float32)
      s += "         float32 gradient vs float64 shadow: relative difference " + fmt(r.float32_rel_diff) +
           (r.float32_ok ? " (ok)\n"
                          : " (FAIL: above " + fmt(options.float32_rtol) + ", absolute floor " + fmt(options.float32_atol) + ")\n");
  }
  return s;
}

std::ostream& operator<<(std::ostream& os, const GradcheckReport& report) { return os << report.str(); }

}  // namespace rwd
