// optim/ and nn/losses against PyTorch 1.13, and their hostile inputs (session 13's audit).
//
// The numbers come from tests/ref/make_optim_loss_parity_s13.py (tests/ref/parity/s13/optim_loss.npz):
// 20-step trajectories of every optimizer variant in float64 and float32, with a zero gradient, a
// missing one and a schedule moving the lr mid-run; schedules and ReduceLROnPlateau edge cases;
// clip_grad_norm_ over norm types and max_norms; every loss under every reduction, with weights,
// class weights, ignore_index and soft targets. What tests/test_optim.cpp and tests/test_losses.cpp
// already cover (4-step trajectories, the common schedules, load_state_dict's key checks) is not
// repeated. The file holds the inputs and the options, so a case is added by the script alone.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nn/losses.hpp>
#include <optim/optim.hpp>
#include <rewind.hpp>

#include "support.hpp"

using namespace rwd;

namespace {

const RefFile& file() {
  static const RefFile f(std::filesystem::path("parity") / "s13" / "optim_loss.npz");
  return f;
}
const std::map<std::string, Tensor>& ref() { return file().all(); }
const Tensor& at(const std::string& key) { return file().at(key); }
std::vector<double> vec(const std::string& key) { return file().vec(key); }
Indices labels_of(const std::string& key) { return file().labels(key); }

/// The keys `prefix<name><suffix>`, names in the file's (sorted) order.
std::vector<std::string> names(const std::string& prefix, const std::string& suffix) {
  std::vector<std::string> out;
  for (const auto& [k, t] : ref())
    if (k.starts_with(prefix) && k.ends_with(suffix) && k.size() > prefix.size() + suffix.size())
      out.push_back(k.substr(prefix.size(), k.size() - prefix.size() - suffix.size()));
  return out;
}

/// `got` within atol + rtol·|want| of `want`, element by element (NaN only where want is NaN).
void check_close(const std::string& what, const std::vector<double>& got, const std::vector<double>& want,
                 double atol, double rtol) {
  REQUIRE_MESSAGE(got.size() == want.size(), what << ": " << got.size() << " values, want " << want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    const bool ok = std::isnan(want[i]) ? std::isnan(got[i])
                    : std::isinf(want[i]) ? got[i] == want[i]
                                          : std::abs(got[i] - want[i]) <= atol + rtol * std::abs(want[i]);
    CHECK_MESSAGE(ok, what << " [" << i << "]: got " << got[i] << ", PyTorch " << want[i]);
  }
}

// ============================================================================================
// Optimizers: 20 steps of make_optim_loss_parity_s13.py's problem
// ============================================================================================

constexpr int kSteps = 20;

struct OptCase {
  std::vector<double> cfg;  // kind, lr, momentum, dampening, wd, nesterov, b1, b2, eps, amsgrad, alpha, centered, sched
  std::unique_ptr<Optimizer> make(std::vector<Tensor> ps) const {
    const auto& c = cfg;
    switch (static_cast<int>(c[0])) {
      case 0:
        return std::make_unique<SGD>(ps, SGDOptions{.lr = c[1], .momentum = c[2], .dampening = c[3],
                                                    .weight_decay = c[4], .nesterov = c[5] != 0});
      case 1:
        return std::make_unique<Adam>(
            ps, AdamOptions{.lr = c[1], .betas = {c[6], c[7]}, .eps = c[8], .weight_decay = c[4], .amsgrad = c[9] != 0});
      case 2:
        return std::make_unique<AdamW>(
            ps, AdamWOptions{.lr = c[1], .betas = {c[6], c[7]}, .eps = c[8], .weight_decay = c[4], .amsgrad = c[9] != 0});
      default:
        return std::make_unique<RMSprop>(ps, RMSpropOptions{.lr = c[1], .alpha = c[10], .eps = c[8],
                                                            .weight_decay = c[4], .momentum = c[2],
                                                            .centered = c[11] != 0});
    }
  }
  std::unique_ptr<LRScheduler> schedule(Optimizer& opt) const {
    switch (static_cast<int>(cfg[12])) {
      case 1: return std::make_unique<StepLR>(opt, 7, 0.5);
      case 2: return std::make_unique<CosineAnnealingLR>(opt, 8, 1e-3);
      case 3: return std::make_unique<ExponentialLR>(opt, 0.9);
      default: return nullptr;
    }
  }
};

// The run: parameters p0 (2, 3) and p1 (4,), each in its own dtype; at step t,
// g = A ⊙ (p − c) + noise[t−1] in the parameter's dtype (as PyTorch computes it), p0's all zeros at
// t = 5, p1's missing at t = 3 and 11. Optionally saves everything at `resume_at`, and continues with
// a fresh optimizer and schedule loaded from it. Returns the 10 values after each step.
struct Run {
  Dtype d0, d1;
  int resume_at = 0;

  std::vector<std::vector<double>> operator()(const OptCase& c) const {
    const std::vector<double> p_init = vec("opt_p0"), A = vec("opt_A"), C = vec("opt_c"), noise = vec("opt_noise");
    Tensor p0 = Tensor::from_vector(std::vector<double>(p_init.begin(), p_init.begin() + 6), {2, 3}, d0).set_requires_grad();
    Tensor p1 = Tensor::from_vector(std::vector<double>(p_init.begin() + 6, p_init.end()), {4}, d1).set_requires_grad();
    std::unique_ptr<Optimizer> opt = c.make({p0, p1});
    std::unique_ptr<LRScheduler> sched = c.schedule(*opt);
    auto grad = [&](const Tensor& p, std::size_t offset, int t) {
      const std::vector<double> v = p.to_vector();
      std::vector<double> g(v.size());
      for (std::size_t j = 0; j < v.size(); ++j) {
        const std::size_t k = offset + j;
        if (p.dtype() == float32)
          g[j] = static_cast<float>(A[k]) * (static_cast<float>(v[j]) - static_cast<float>(C[k])) +
                 static_cast<float>(noise[(t - 1) * 10 + k]);
        else
          g[j] = A[k] * (v[j] - C[k]) + noise[(t - 1) * 10 + k];
      }
      return Tensor::from_vector(g, p.shape(), p.dtype());
    };
    std::vector<std::vector<double>> out;
    for (int t = 1; t <= kSteps; ++t) {
      p0.set_grad(t == 5 ? Tensor::zeros({2, 3}, d0) : grad(p0, 0, t));
      if (t == 3 || t == 11)
        p1.zero_grad(/*set_to_none=*/true);
      else
        p1.set_grad(grad(p1, 6, t));
      opt->step();
      if (sched) sched->step();
      std::vector<double> row = p0.to_vector(), v1 = p1.to_vector();
      row.insert(row.end(), v1.begin(), v1.end());
      out.push_back(row);
      if (t == resume_at) {
        // what a checkpoint keeps, into a new optimizer and schedule over the same parameters
        const StateDict so = opt->state_dict();
        const StateDict ss = sched ? sched->state_dict() : StateDict{};
        sched.reset();
        opt = c.make({p0, p1});
        sched = c.schedule(*opt);
        opt->load_state_dict(so);
        if (sched) sched->load_state_dict(ss);
      }
    }
    return out;
  }
};

std::vector<std::vector<double>> torch_run(const std::string& name, int which) {
  const std::vector<double> v = vec("opt." + name);
  std::vector<std::vector<double>> out(kSteps);
  for (int t = 0; t < kSteps; ++t)
    out[t].assign(v.begin() + (which * kSteps + t) * 10, v.begin() + (which * kSteps + t + 1) * 10);
  return out;
}

void check_trajectory(const std::string& what, const std::vector<std::vector<double>>& got,
                      const std::vector<std::vector<double>>& want, double tol, std::size_t from = 0,
                      std::size_t to = 10) {
  for (int t = 0; t < kSteps; ++t)
    check_close(what + " step " + std::to_string(t + 1),
                std::vector<double>(got[t].begin() + from, got[t].begin() + to),
                std::vector<double>(want[t].begin() + from, want[t].begin() + to), tol, tol);
}

}  // namespace

TEST_CASE("optim parity: 20 steps of SGD, Adam, AdamW, RMSprop (every variant) match PyTorch in float64 and float32") {
  const std::vector<std::string> cases = names("opt.", ".cfg");
  REQUIRE(cases.size() >= 14);
  for (const std::string& name : cases) {
    CAPTURE(name);
    const OptCase c{vec("opt." + name + ".cfg")};
    check_trajectory(name + " f64", Run{float64, float64}(c), torch_run(name, 0), 1e-12);
    // float32 against PyTorch's float32 run: the same operations in the same precision, up to the
    // order of a few roundings, compounded over 20 steps
    check_trajectory(name + " f32", Run{float32, float32}(c), torch_run(name, 1), 2e-6);
  }
}

TEST_CASE("optim parity: a float32 and a float64 parameter in one optimizer each follow their own dtype's run") {
  for (const std::string& name : names("opt.", ".cfg")) {
    CAPTURE(name);
    const auto mixed = Run{float32, float64}(OptCase{vec("opt." + name + ".cfg")});
    check_trajectory(name + " p0 (f32)", mixed, torch_run(name, 1), 2e-6, 0, 6);
    check_trajectory(name + " p1 (f64)", mixed, torch_run(name, 0), 1e-12, 6, 10);
  }
}

TEST_CASE("optim parity: saving the optimizer and schedule mid-run and loading them into new ones changes no bit") {
  for (const std::string& name : names("opt.", ".cfg")) {
    CAPTURE(name);
    const OptCase c{vec("opt." + name + ".cfg")};
    for (Dtype dt : {float64, float32})
      for (int at : {2, 10}) {  // at 10 p1's state lags p0's (it had no gradient at step 3)
        const auto straight = Run{dt, dt}(c), resumed = Run{dt, dt, at}(c);
        for (int t = 0; t < kSteps; ++t) CHECK_MESSAGE(resumed[t] == straight[t], "resumed at " << at << ", step " << t + 1);
      }
  }
}

// ============================================================================================
// Schedules
// ============================================================================================

TEST_CASE("optim parity: schedule edge cases — T_max 1, several cosine periods, chained schedules, a manual lr") {
  struct Sched {
    std::string name;
    std::function<std::vector<std::unique_ptr<LRScheduler>>(Optimizer&)> make;
    std::map<int, double> manual = {};  // epoch → lr set by hand after that epoch's step
    double start = 0.1;                 // the optimizer's lr before the first step
  };
  auto one = [](auto f) {
    return [f](Optimizer& o) {
      std::vector<std::unique_ptr<LRScheduler>> v;
      v.push_back(f(o));
      return v;
    };
  };
  const std::vector<Sched> table{
      {"cos_T1", one([](Optimizer& o) { return std::make_unique<CosineAnnealingLR>(o, 1, 0.01); })},
      {"cos_T3", one([](Optimizer& o) { return std::make_unique<CosineAnnealingLR>(o, 3); })},
      {"cos_T8_eta", one([](Optimizer& o) { return std::make_unique<CosineAnnealingLR>(o, 8, 1e-3); })},
      {"step_exp_chain",
       [](Optimizer& o) {
         std::vector<std::unique_ptr<LRScheduler>> v;
         v.push_back(std::make_unique<StepLR>(o, 2, 0.5));
         v.push_back(std::make_unique<ExponentialLR>(o, 0.9));
         return v;
       }},
      {"cos_manual", one([](Optimizer& o) { return std::make_unique<CosineAnnealingLR>(o, 10); }), {{4, 0.05}}},
      {"step_gamma2", one([](Optimizer& o) { return std::make_unique<StepLR>(o, 3, 2.0); })},
      {"exp_gamma0", one([](Optimizer& o) { return std::make_unique<ExponentialLR>(o, 0.0); })},
      // from lr 0 up to eta_min and back: PyTorch's chainable form rounds to −8e−17 at epoch 8, which
      // the optimizer refuses as an lr; the exact value is 0 (the cosine never leaves [0, 0.1])
      {"cos_up_from0", one([](Optimizer& o) { return std::make_unique<CosineAnnealingLR>(o, 4, 0.1); }), {}, 0.0},
  };
  REQUIRE(names("sched.", "").size() == table.size());
  for (const Sched& s : table) {
    CAPTURE(s.name);
    const std::vector<double> want = vec("sched." + s.name);
    Tensor w = Tensor::zeros({1}, float64).set_requires_grad();
    SGD opt({w}, {.lr = s.start});
    auto scheds = s.make(opt);
    std::vector<double> got;
    for (int e = 1; e <= static_cast<int>(want.size()); ++e) {
      for (auto& sc : scheds) sc->step();
      if (s.manual.count(e)) opt.set_lr(s.manual.at(e));
      got.push_back(opt.lr());
      CHECK(opt.lr() >= 0);
    }
    check_close(s.name, got, want, 1e-15, 1e-13);
  }
}

TEST_CASE("optim parity: ReduceLROnPlateau — max mode, abs threshold with min_lr, cooldown with NaN metrics, eps, negative metrics") {
  const std::vector<std::string> cases = names("plateau.", ".cfg");
  REQUIRE(cases.size() == 5);
  for (const std::string& name : cases) {
    CAPTURE(name);
    const std::vector<double> c = vec("plateau." + name + ".cfg");
    Tensor w = Tensor::zeros({1}, float64).set_requires_grad();
    SGD opt({w}, {.lr = 0.1});
    ReduceLROnPlateau sched(opt, {.maximize = c[0] != 0, .factor = c[1], .patience = static_cast<std::int64_t>(c[2]),
                                  .threshold = c[3], .relative_threshold = c[4] != 0,
                                  .cooldown = static_cast<std::int64_t>(c[5]), .min_lr = c[6], .eps = c[7]});
    std::vector<double> got;
    for (double m : vec("plateau." + name + ".metrics")) {
      sched.step(m);
      got.push_back(opt.lr());
    }
    check_close(name, got, vec("plateau." + name + ".lr"), 0, 1e-15);
  }
}

// ============================================================================================
// Clipping
// ============================================================================================

TEST_CASE("optim parity: clip_grad_norm over norm types 0.5 … inf and max_norm 0, tiny, inf, float64 and float32") {
  const std::vector<double> g = vec("clip.g");
  for (Dtype dt : {float64, float32}) {
    const Tensor rows = at(std::string("clip.") + (dt == float64 ? "f64" : "f32"));
    const std::vector<double> all = rows.to_vector();
    const std::size_t width = rows.shape()[1];
    for (std::size_t r = 0; r < rows.shape()[0]; ++r) {
      const std::vector<double> row(all.begin() + r * width, all.begin() + (r + 1) * width);
      CAPTURE(row[0]);
      CAPTURE(row[1]);
      Tensor p0 = Tensor::zeros({2, 3}, dt).set_requires_grad(), p1 = Tensor::zeros({4}, dt).set_requires_grad();
      Tensor p2 = Tensor::zeros({3}, dt).set_requires_grad();  // no gradient: skipped
      p0.set_grad(Tensor::from_vector(std::vector<double>(g.begin(), g.begin() + 6), {2, 3}, dt));
      p1.set_grad(Tensor::from_vector(std::vector<double>(g.begin() + 6, g.end()), {4}, dt));
      const double tol = dt == float64 ? 1e-14 : 1e-6;
      const double total = clip_grad_norm({p0, p2, p1}, row[1], row[0]);
      check_close("total", {total}, {row[2]}, tol, tol);
      std::vector<double> got = p0.grad().to_vector(), g1 = p1.grad().to_vector();
      got.insert(got.end(), g1.begin(), g1.end());
      check_close("clipped", got, std::vector<double>(row.begin() + 3, row.end()), tol, tol);
      CHECK_FALSE(p2.grad().defined());
    }
  }
}

// ============================================================================================
// Losses
// ============================================================================================

namespace {

Tensor leaf(const std::string& key, Dtype dt = float64) {
  return at(key).to(dt).detach().set_requires_grad();
}

const char* reduction_name(Reduction r) { return r == Reduction::none ? "none" : r == Reduction::sum ? "sum" : "mean"; }

// value and gradient of `f(x, reduction)` against `<key>.<reduction>.value/.grad`; for `none`, the
// gradient is that of Σ ℓ ⊙ R
void check_loss(const std::string& key, const std::string& x_key, const std::string& r_key,
                const std::function<Tensor(const Tensor&, Reduction)>& f, double tol = 1e-12) {
  for (Reduction red : {Reduction::none, Reduction::sum, Reduction::mean}) {
    const std::string k = key + "." + reduction_name(red);
    CAPTURE(k);
    Tensor x = leaf(x_key);
    Tensor value = f(x, red);
    check_close(k + ".value", value.to_vector(), vec(k + ".value"), tol, tol);
    Tensor s = red == Reduction::none ? sum(value * reshape(at(r_key), value.shape())) : value;
    s.backward();
    check_close(k + ".grad", x.grad().to_vector(), vec(k + ".grad"), tol, tol);
  }
}

}  // namespace

TEST_CASE("loss parity: mse, l1, huber, binary_cross_entropy(_with_logits) — every reduction, with and without weight") {
  using Fn = std::function<Tensor(const Tensor&, const Tensor&, const LossOptions&)>;
  const std::vector<std::pair<std::string, Fn>> table{
      {"mse", [](auto& x, auto& t, auto& o) { return mse_loss(x, t, o); }},
      {"l1", [](auto& x, auto& t, auto& o) { return l1_loss(x, t, o); }},
      {"huber", [](auto& x, auto& t, auto& o) { return huber_loss(x, t, 0.7, o); }},
      {"bce", [](auto& x, auto& t, auto& o) { return binary_cross_entropy(x, t, o); }},
      {"bce_logits", [](auto& x, auto& t, auto& o) { return binary_cross_entropy_with_logits(x, t, o); }},
  };
  for (const auto& [name, fn] : table)
    for (bool weighted : {false, true}) {
      const std::string base = "loss." + name;
      const Tensor w = weighted ? at("loss.w") : Tensor();
      for (Reduction red : {Reduction::none, Reduction::sum, Reduction::mean}) {
        const std::string k = base + "." + reduction_name(red) + (weighted ? ".w" : "");
        CAPTURE(k);
        Tensor x = leaf(base + ".x"), target = leaf(base + ".t");
        Tensor value = fn(x, target, LossOptions{.reduction = red, .weight = w});
        check_close(k + ".value", value.to_vector(), vec(k + ".value"), 1e-13, 1e-13);
        (red == Reduction::none ? sum(value * at("loss.R")) : value).backward();
        check_close(k + ".grad", x.grad().to_vector(), vec(k + ".grad"), 1e-13, 1e-13);
        // the target's gradient, where PyTorch has one (all five in 1.13)
        REQUIRE(ref().count(k + ".tgrad"));
        check_close(k + ".tgrad", target.grad().to_vector(), vec(k + ".tgrad"), 1e-13, 1e-13);
      }
    }
  // binary_cross_entropy at p = 0 and 1: PyTorch's clamp of the logs at −100 (values; the gradient there is
  // documented to differ)
  check_close("bce_clamp",
              binary_cross_entropy(at("loss.bce_clamp.x"), at("loss.bce_clamp.t"), {.reduction = Reduction::none})
                  .to_vector(),
              vec("loss.bce_clamp.value"), 1e-13, 1e-13);
}

TEST_CASE("loss parity: cross_entropy and nll_loss with class weights, ignore_index, soft targets, 3-d input (explicit axis)") {
  const Indices labels = labels_of("loss.ce.labels"), labels_in = labels_of("loss.ce.labels_in");
  const Tensor cw = at("loss.ce.cw");
  auto ce = [&](const Indices& y, ClassLossOptions o) {
    o.axis = 1;  // PyTorch's layout (N, C)
    return [y, o](const Tensor& x, Reduction r) {
      ClassLossOptions oo = o;
      oo.reduction = r;
      return cross_entropy(x, y, oo);
    };
  };
  check_loss("loss.ce.plain", "loss.ce.logits", "loss.ce.R", ce(labels_in, {}));
  check_loss("loss.ce.cw", "loss.ce.logits", "loss.ce.R", ce(labels_in, {.class_weight = cw}));
  check_loss("loss.ce.ignore", "loss.ce.logits", "loss.ce.R", ce(labels, {.ignore_index = -100}));
  check_loss("loss.ce.ignore2_cw", "loss.ce.logits", "loss.ce.R", ce(labels_in, {.ignore_index = 2, .class_weight = cw}));
  auto soft = [&](ClassLossOptions o) {
    o.axis = -1;  // a negative axis: the last
    return [o](const Tensor& x, Reduction r) {
      ClassLossOptions oo = o;
      oo.reduction = r;
      return cross_entropy(x, at("loss.ce.probs"), oo);
    };
  };
  check_loss("loss.ce.soft", "loss.ce.logits", "loss.ce.R", soft({}));
  check_loss("loss.ce.soft_cw", "loss.ce.logits", "loss.ce.R", soft({.class_weight = cw}));
  for (bool weighted : {false, true}) {  // the soft target's own gradient
    const std::string k = std::string("loss.ce.") + (weighted ? "soft_cw" : "soft") + ".none.tgrad";
    Tensor target = leaf("loss.ce.probs");
    ClassLossOptions o{.reduction = Reduction::none, .axis = 1};
    if (weighted) o.class_weight = cw;
    sum(cross_entropy(at("loss.ce.logits"), target, o) * at("loss.ce.R")).backward();
    check_close(k, target.grad().to_vector(), vec(k), 1e-12, 1e-12);
  }
  check_loss("loss.nll.cw_ignore", "loss.nll.logp", "loss.ce.R", [&](const Tensor& x, Reduction r) {
    return nll_loss(x, labels, {.reduction = r, .axis = 1, .ignore_index = -100, .class_weight = cw});
  });
  // (B, C, T) with the class axis given: labels in row-major order of (B, T)
  const std::vector<double> cwv = cw.to_vector();
  const Tensor cw3 = Tensor::from_vector(std::vector<double>(cwv.begin(), cwv.begin() + 4), {4}, float64);
  check_loss("loss.ce3.cw_ignore", "loss.ce3.logits", "loss.ce3.R", [&](const Tensor& x, Reduction r) {
    return cross_entropy(x, labels_of("loss.ce3.labels"),
                         {.reduction = r, .axis = 1, .ignore_index = -100, .class_weight = cw3});
  });
}

TEST_CASE("loss parity: an ignored example whose class-0 log-probability is -inf adds nothing (PyTorch skips it)") {
  // A masked-out class (logit −inf) at an ignored position: PyTorch never reads it; the loss and the
  // gradient stay finite. (An ignored label gathers some class and gets weight 0 — 0·∞ would be NaN.)
  const Indices labels = labels_of("loss.ce.labels");
  check_loss("loss.ce.ignore_ninf", "loss.ce.logits_ninf", "loss.ce.R", [&](const Tensor& x, Reduction r) {
    return cross_entropy(x, labels, {.reduction = r, .axis = 1, .ignore_index = -100});
  });
  check_loss("loss.nll.ignore_ninf", "loss.nll.logp_ninf", "loss.ce.R", [&](const Tensor& x, Reduction r) {
    return nll_loss(x, labels, {.reduction = r, .axis = 1, .ignore_index = -100});
  });
}

// ============================================================================================
// Hostile inputs
// ============================================================================================

TEST_CASE("optim hostile: NaN and out-of-range hyper-parameters are refused at construction, naming the optimizer") {
  Tensor w = Tensor::ones({2}, float64).set_requires_grad();
  auto refused = [](auto make, const char* who, const char* what) {
    const std::string m = message_of<ValueError>(make);
    CHECK_MESSAGE(m.find(who) != std::string::npos, m);
    CHECK_MESSAGE(m.find(what) != std::string::npos, m);
  };
  refused([&] { SGD({w}, {.lr = NAN}); }, "SGD", "learning rate");
  refused([&] { SGD({w}, {.lr = INFINITY}); }, "SGD", "learning rate");
  refused([&] { SGD({w}, {.momentum = NAN}); }, "SGD", "momentum");
  refused([&] { SGD({w}, {.dampening = NAN}); }, "SGD", "dampening");
  refused([&] { SGD({w}, {.weight_decay = -0.1}); }, "SGD", "weight_decay");
  refused([&] { SGD({w}, {.weight_decay = NAN}); }, "SGD", "weight_decay");
  refused([&] { SGD({w}, {.momentum = 0.0, .nesterov = true}); }, "SGD", "Nesterov");
  refused([&] { Adam({w}, {.betas = {NAN, 0.9}}); }, "Adam", "beta parameter at index 0");
  refused([&] { Adam({w}, {.betas = {0.9, 1.0}}); }, "Adam", "beta parameter at index 1");
  refused([&] { Adam({w}, {.eps = NAN}); }, "Adam", "epsilon");
  refused([&] { Adam({w}, {.eps = -1e-8}); }, "Adam", "epsilon");
  refused([&] { AdamW({w}, {.weight_decay = NAN}); }, "AdamW", "weight_decay");
  refused([&] { AdamW({w}, {.betas = {-0.1, 0.9}}); }, "AdamW", "beta parameter at index 0");
  refused([&] { RMSprop({w}, {.alpha = NAN}); }, "RMSprop", "alpha");
  // alpha is RMSprop's β₂: above 1, v = αv + (1 − α)g² goes negative and √v is NaN at the first step;
  // at 1, v stays 0 and every step divides by ε (PyTorch accepts both)
  refused([&] { RMSprop({w}, {.alpha = 1.5}); }, "RMSprop", "alpha");
  refused([&] { RMSprop({w}, {.alpha = 1.0}); }, "RMSprop", "must be in [0, 1)");
  refused([&] { RMSprop({w}, {.eps = -1}); }, "RMSprop", "epsilon");
  refused([&] { RMSprop({w}, {.momentum = -0.5}); }, "RMSprop", "momentum");
  refused([&] { RMSprop({w}, {.weight_decay = NAN}); }, "RMSprop", "weight_decay");
}

TEST_CASE("optim hostile: a NaN gradient makes a NaN weight as in PyTorch, check_finite_grads names it first") {
  Tensor w = Tensor::from_vector({1.0, 2.0}, {2}, float64).set_requires_grad();
  w.set_grad(Tensor::from_vector({NAN, 1.0}, {2}, float64));
  CHECK_THROWS_AS(check_finite_grads({w}, "loop"), NonFiniteGradError);
  CHECK(w.to_vector() == std::vector<double>{1.0, 2.0});
  Adam opt({w}, {.lr = 0.1});
  opt.step();
  const std::vector<double> v = w.to_vector();
  CHECK(std::isnan(v[0]));
  CHECK(v[1] == doctest::Approx(1.9));  // the other element is untouched by the NaN
}

TEST_CASE("optim hostile: loading another optimizer's state is refused, the optimizer unchanged") {
  Tensor a = Tensor::ones({2, 2}, float64).set_requires_grad();
  auto stepped = [&](Optimizer& o) {
    a.set_grad(Tensor::full({2, 2}, 0.5, float64));
    o.step();
    return o.state_dict();
  };
  Adam adam({a}), ams({a}, {.amsgrad = true});
  SGD sgd({a}, {.lr = 0.1, .momentum = 0.9}), plain({a}, {.lr = 0.1});
  RMSprop rms({a});
  const StateDict s_adam = stepped(adam), s_ams = stepped(ams), s_sgd = stepped(sgd), s_rms = stepped(rms);
  CHECK_THROWS_WITH_AS(sgd.load_state_dict(s_adam), doctest::Contains("unexpected key '0.step'"), ValueError);
  CHECK_THROWS_WITH_AS(plain.load_state_dict(s_sgd), doctest::Contains("SGD keeps no per-parameter state"), ValueError);
  CHECK_THROWS_WITH_AS(adam.load_state_dict(s_sgd), doctest::Contains("unexpected key '0.momentum_buffer'"), ValueError);
  CHECK_THROWS_WITH_AS(adam.load_state_dict(s_rms), doctest::Contains("unexpected key '0.square_avg'"), ValueError);
  CHECK_THROWS_WITH_AS(adam.load_state_dict(s_ams), doctest::Contains("unexpected key '0.max_exp_avg_sq'"), ValueError);
  CHECK_THROWS_WITH_AS(ams.load_state_dict(s_adam), doctest::Contains("missing key '0.max_exp_avg_sq'"), ValueError);
  CHECK_THROWS_WITH_AS(rms.load_state_dict(s_adam), doctest::Contains("unexpected key '0.exp_avg'"), ValueError);
  CHECK(adam.state_dict()[2].second.item() == 1.0);  // 0.step still 1
  // another model's state: a parameter of another shape
  Tensor b = Tensor::ones({4}, float64).set_requires_grad();
  Adam other({b});
  CHECK_THROWS_AS(other.load_state_dict(s_adam), ShapeError);
}

TEST_CASE("optim hostile: clip_grad_norm refuses a parameter listed twice (its gradient would count and scale twice)") {
  // PyTorch 1.13 sums the duplicate's norm twice and multiplies its gradient twice; the optimizers
  // refuse a repeated parameter for the same reason.
  Tensor w = Tensor::ones({3}, float64).set_requires_grad();
  Tensor u = Tensor::ones({2}, float64).set_requires_grad();
  w.set_grad(Tensor::from_vector({3.0, 4.0, 0.0}, {3}, float64));
  u.set_grad(Tensor::from_vector({1.0, 1.0}, {2}, float64));
  const std::string m = message_of<ValueError>([&] { clip_grad_norm({w, u, w}, 1.0); });
  CHECK_MESSAGE(m.find("clip_grad_norm: parameter 2 is the same tensor as parameter 0") != std::string::npos, m);
  CHECK(w.grad().to_vector() == std::vector<double>{3.0, 4.0, 0.0});  // untouched
  CHECK(clip_grad_norm({w, u}, 100.0) == doctest::Approx(std::sqrt(27.0)));
}

TEST_CASE("optim hostile: clip_grad_norm and clip_grad_value refuse max_norm < 0 or NaN and norm types ≤ 0 or NaN") {
  Tensor w = Tensor::ones({3}, float64).set_requires_grad();
  w.set_grad(Tensor::from_vector({3.0, -4.0, 0.5}, {3}, float64));
  for (double max_norm : {-1.0, double(NAN)}) CHECK_THROWS_AS(clip_grad_norm({w}, max_norm), ValueError);
  for (double p : {0.0, -1.0, -double(INFINITY), double(NAN)}) CHECK_THROWS_AS(clip_grad_norm({w}, 1.0, p), ValueError);
  for (double c : {-1.0, double(NAN)}) CHECK_THROWS_AS(clip_grad_value({w}, c), ValueError);
  CHECK(w.grad().to_vector() == std::vector<double>{3.0, -4.0, 0.5});
  clip_grad_value({w}, INFINITY);  // no bound: unchanged
  CHECK(w.grad().to_vector() == std::vector<double>{3.0, -4.0, 0.5});
}

TEST_CASE("optim hostile: ReduceLROnPlateau refuses an infinite min_lr at construction (not at the reduction)") {
  Tensor w = Tensor::zeros({1}, float64).set_requires_grad();
  SGD opt({w}, {.lr = 0.1});
  CHECK_THROWS_WITH_AS(ReduceLROnPlateau(opt, {.patience = 0, .min_lr = INFINITY}),
                       doctest::Contains("ReduceLROnPlateau: invalid min_lr: inf"), ValueError);
  CHECK_THROWS_AS(ReduceLROnPlateau(opt, {.factor = NAN}), ValueError);
  CHECK_THROWS_AS(ReduceLROnPlateau(opt, {.threshold = NAN}), ValueError);
  CHECK_THROWS_AS(ReduceLROnPlateau(opt, {.factor = 1.0}), ValueError);
}

TEST_CASE("optim hostile: schedules refuse bad arguments and corrupt state") {
  Tensor w = Tensor::zeros({1}, float64).set_requires_grad();
  SGD opt({w}, {.lr = 0.1});
  CHECK_THROWS_AS(StepLR(opt, 0), ValueError);
  CHECK_THROWS_AS(StepLR(opt, 2, NAN), ValueError);
  CHECK_THROWS_AS(ExponentialLR(opt, -0.5), ValueError);
  CHECK_THROWS_AS(CosineAnnealingLR(opt, 0), ValueError);
  CHECK_THROWS_AS(CosineAnnealingLR(opt, 5, NAN), ValueError);
  CosineAnnealingLR s(opt, 5);
  // The schedule's own state with one value made bad (a state lacking keys would fail for those first).
  auto with = [&](const char* key, double v) {
    StateDict st = s.state_dict();
    for (auto& [k, t] : st)
      if (k == key) t = Tensor::scalar(v, float64);
    return st;
  };
  CHECK_THROWS_WITH_AS(s.load_state_dict(with("last_epoch", -1.0)), doctest::Contains("'last_epoch' is -1"), ValueError);
  CHECK_THROWS_WITH_AS(s.load_state_dict(with("base_lr", NAN)), doctest::Contains("'base_lr' is nan"), ValueError);
  CHECK(s.last_epoch() == 0);
}

TEST_CASE("loss hostile: binary cross-entropy targets outside [0, 1] or NaN are refused (the loss would be unbounded below)") {
  // With y = 2 (or −1, an SVM-style label), −y·log p − (1 − y)·log(1 − p) has no minimum: the model is
  // driven to p → 1 (or 0) and the loss goes negative without bound. PyTorch computes it silently.
  const Tensor p = Tensor::from_vector({0.3, 0.6}, {2}, float64);
  for (double bad : {2.0, -1.0, double(NAN)}) {
    CAPTURE(bad);
    const Tensor y = Tensor::from_vector({0.5, bad}, {2}, float64);
    const std::string m = message_of<ValueError>([&] { binary_cross_entropy(p, y); });
    CHECK_MESSAGE(m.find("binary_cross_entropy: target") != std::string::npos, m);
    CHECK_MESSAGE(m.find("position 1") != std::string::npos, m);
    const std::string ml = message_of<ValueError>([&] { binary_cross_entropy_with_logits(p, y); });
    CHECK_MESSAGE(ml.find("binary_cross_entropy_with_logits: target") != std::string::npos, ml);
  }
  // the ends are fine
  CHECK(std::isfinite(binary_cross_entropy(p, Tensor::from_vector({0.0, 1.0}, {2}, float64)).item()));
  CHECK(std::isfinite(binary_cross_entropy_with_logits(p, Tensor::from_vector({0.0, 1.0}, {2}, float64)).item()));
}

TEST_CASE("loss hostile: labels out of range, every label ignored, empty batches, shape mismatches") {
  const Tensor logits = Tensor::from_vector({0.1, 0.2, 0.3, 0.4, 0.5, 0.6}, {2, 3}, float64);  // (N, C) with axis 1
  SUBCASE("a label out of range or negative names the loss, the position and the value") {
    for (std::int64_t bad : {3, -1, -100}) {
      const std::string m = message_of<ValueError>([&] { cross_entropy(logits, Indices{0, bad}, {.axis = 1}); });
      CHECK_MESSAGE(m.find("cross_entropy: label " + std::to_string(bad) + " at position 1 is out of range [0, 3)") !=
                        std::string::npos,
                    m);
      CHECK_THROWS_AS(nll_loss(logits, Indices{bad, 0}, {.axis = 1}), ValueError);
    }
    CHECK_THROWS_AS(cross_entropy(logits, Indices{0, 1, 2}, {.axis = 1}), ShapeError);  // a label too many
  }
  SUBCASE("every example ignored: mean and sum are 0, with a zero gradient (PyTorch's mean is NaN: 0/0)") {
    for (Reduction r : {Reduction::mean, Reduction::sum}) {
      Tensor x = logits.detach().set_requires_grad();
      Tensor l = cross_entropy(x, Indices{-100, -100}, {.reduction = r, .axis = 1, .ignore_index = -100});
      CHECK(l.item() == 0.0);
      l.backward();
      for (double g : x.grad().to_vector()) CHECK(g == 0.0);
    }
    Tensor none = nll_loss(logits, Indices{-100, -100}, {.reduction = Reduction::none, .axis = 1, .ignore_index = -100});
    CHECK(none.to_vector() == std::vector<double>{0.0, 0.0});
  }
  SUBCASE("an empty batch is refused whatever the reduction") {
    for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
      CHECK_THROWS_AS(cross_entropy(Tensor::zeros({0, 3}, float64), Indices{}, {.reduction = r, .axis = 1}), ShapeError);
      CHECK_THROWS_AS(mse_loss(Tensor::zeros({0}, float64), Tensor::zeros({0}, float64), {.reduction = r}), ShapeError);
    }
  }
  SUBCASE("shape and dtype mismatches") {
    CHECK_THROWS_AS(mse_loss(Tensor::zeros({2, 3}, float64), Tensor::zeros({3, 2}, float64)), ShapeError);
    CHECK_THROWS_AS(l1_loss(Tensor::zeros({1, 3}, float64), Tensor::zeros({3}, float64)), ShapeError);
    CHECK_THROWS_AS(cross_entropy(logits, Tensor::zeros({3, 2}, float64), {.axis = 1}), ShapeError);
    CHECK_THROWS_AS(huber_loss(Tensor::zeros({3}, float64), Tensor::zeros({3}, float32)), DtypeError);
    CHECK_THROWS_AS(cross_entropy(logits, Indices{0, 1}, {.axis = 1, .class_weight = Tensor::ones({2}, float64)}),
                    ShapeError);
  }
}

TEST_CASE("optim hostile: a schedule whose lr would overflow throws naming the schedule, its state as before the step") {
  Tensor w = Tensor::zeros({1}, float64).set_requires_grad();
  SGD opt({w}, {.lr = 0.1});
  ExponentialLR s(opt, 1e200);
  s.step();  // 1e199
  CHECK(opt.lr() == doctest::Approx(1e199));
  const std::string m = message_of<ValueError>([&] { s.step(); });  // 1e399: inf
  CHECK_MESSAGE(m.find("ExponentialLR") != std::string::npos, m);
  CHECK_MESSAGE(m.find("epoch 2") != std::string::npos, m);
  CHECK(s.last_epoch() == 1);
  CHECK(s.last_lr() == opt.lr());
  CHECK(opt.lr() == doctest::Approx(1e199));
}

TEST_CASE("optim hostile: a norm that overflows from finite gradients is reported as such, not blamed on an element") {
  // (Σ |g|ᵖ)^(1/p) can be infinite with every element finite: near DBL_MAX, or for a tiny p. With
  // error_if_nonfinite the message used to name "the first non-finite element" — a finite one.
  for (double p : {2.0, 1e-3}) {
    CAPTURE(p);
    Tensor w = Tensor::ones({3}, float64).set_requires_grad();
    const double big = p == 2.0 ? 1.5e308 : 1.0;  // 1.5e308·√3; 3^1000
    w.set_grad(Tensor::from_vector({big, big, big}, {3}, float64));
    try {
      clip_grad_norm({w}, 1.0, p, /*error_if_nonfinite=*/true);
      FAIL_CHECK("did not throw");
    } catch (const NonFiniteGradError& e) {
      const std::string m = e.what();
      CHECK_MESSAGE(m.find("every gradient element is finite") != std::string::npos, m);
      CHECK_MESSAGE(m.find("first non-finite element") == std::string::npos, m);
      CHECK(std::isinf(e.value));
    }
    CHECK(w.grad().to_vector() == std::vector<double>{big, big, big});  // untouched
  }
}

TEST_CASE("optim hostile: CosineAnnealingLR with a huge T_max steps without integer overflow") {
  // The bottom-of-the-cosine test (e − 1 − T) mod 2T formed 2T, which overflows an int64 for
  // T > 2^62 (undefined behaviour: the sanitizer build stops on it).
  for (std::int64_t T : {std::int64_t{1} << 62, std::numeric_limits<std::int64_t>::max()}) {
    Tensor w = Tensor::zeros({1}, float64).set_requires_grad();
    SGD opt({w}, {.lr = 0.1});
    CosineAnnealingLR s(opt, T);
    for (int e = 0; e < 3; ++e) s.step();
    CHECK(opt.lr() == doctest::Approx(0.1));
  }
}
