// Features a PyTorch user expects, matched to PyTorch 1.13 (session 13, helper f): cross_entropy's
// label_smoothing, binary_cross_entropy_with_logits' pos_weight, and the MultiStepLR, LinearLR and
// LambdaLR schedules — each against tests/ref/make_features_s13f.py's numbers
// (tests/ref/parity/s13/features_s13f.npz), float64 gradcheck, and its hostile inputs.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <autograd/gradcheck.hpp>
#include <nn/losses.hpp>
#include <optim/optim.hpp>
#include <rewind.hpp>

#include "support.hpp"

using namespace rwd;

namespace {

const RefFile& file() {
  static const RefFile f(std::filesystem::path("parity") / "s13" / "features_s13f.npz");
  return f;
}
const std::map<std::string, Tensor>& ref() { return file().all(); }
const Tensor& at(const std::string& key) { return file().at(key); }
std::vector<double> vec(const std::string& key) { return file().vec(key); }
Indices labels_of(const std::string& key) { return file().labels(key); }

/// A (r, c) row-major matrix's values in (c, r) order.
std::vector<double> transposed(const std::vector<double>& v, std::size_t r, std::size_t c) {
  std::vector<double> out(v.size());
  for (std::size_t i = 0; i < r; ++i)
    for (std::size_t j = 0; j < c; ++j) out[j * r + i] = v[i * c + j];
  return out;
}

void check_close(const std::string& what, const std::vector<double>& got, const std::vector<double>& want,
                 double atol, double rtol) {
  REQUIRE_MESSAGE(got.size() == want.size(), what << ": " << got.size() << " values, want " << want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    const bool ok = std::isnan(want[i]) ? std::isnan(got[i])
                                        : std::abs(got[i] - want[i]) <= atol + rtol * std::abs(want[i]);
    CHECK_MESSAGE(ok, what << " [" << i << "]: got " << got[i] << ", PyTorch " << want[i]);
  }
}

const char* reduction_name(Reduction r) { return r == Reduction::none ? "none" : r == Reduction::sum ? "sum" : "mean"; }
constexpr Reduction kReductions[] = {Reduction::none, Reduction::sum, Reduction::mean};

Tensor leaf(const Tensor& t) { return t.to(float64).detach().set_requires_grad(); }

template <class E>
void refused(const std::function<void()>& f, std::initializer_list<const char*> words) {
  const std::string m = message_of<E>(f);
  for (const char* w : words) CHECK_MESSAGE(m.find(w) != std::string::npos, "'" << w << "' not in: " << m);
}

struct SmoothCase {
  std::string name;
  double eps;
  bool probs;  // probability targets, else index labels
  bool cw;
  std::optional<std::int64_t> ignore_index;
  std::string labels = "ls.labels";
};

const std::vector<SmoothCase>& smooth_cases() {
  static const std::vector<SmoothCase> c{
      {"idx_0.1", 0.1, false, false, -100},
      {"idx_0.3_cw", 0.3, false, true, -100},
      {"idx_0.2_ign", 0.2, false, false, -100, "ls.labels_ign"},
      {"idx_0.25_cw_ign", 0.25, false, true, -100, "ls.labels_ign"},
      {"idx_0.4_cw_ign2", 0.4, false, true, 2},
      {"idx_1", 1.0, false, true, -100},
      {"prob_0.2", 0.2, true, false, std::nullopt},
      {"prob_0.35_cw", 0.35, true, true, std::nullopt},
  };
  return c;
}

// cross_entropy of `logits` for case `c`, class axis `axis` (PyTorch's (N, C) layout: 1), with `probs`
// as the probability target if the case has one.
Tensor smoothed_ce(const SmoothCase& c, const Tensor& logits, const Tensor& probs, const Tensor& cw, int axis,
                   Reduction r) {
  ClassLossOptions o{.reduction = r, .axis = axis, .label_smoothing = c.eps};
  if (c.cw) o.class_weight = cw;
  if (c.probs) return cross_entropy(logits, probs, o);
  o.ignore_index = c.ignore_index;
  return cross_entropy(logits, labels_of(c.labels), o);
}

}  // namespace

// ============================================================================================
// cross_entropy: label_smoothing
// ============================================================================================

TEST_CASE("label_smoothing: cross_entropy(logits, labels or probabilities, {.label_smoothing}) matches PyTorch's loss and gradients") {
  // every case, every reduction, in PyTorch's (N, C) layout (axis 1) and in rewind's own (C, N) layout
  // (the default axis 0, the inputs and results transposed)
  const Tensor cw = at("ls.cw"), probs = at("ls.probs"), R = at("ls.R");
  const std::size_t N = 6, C = 5;
  for (const SmoothCase& c : smooth_cases())
    for (bool rewind_layout : {false, true})
      for (Reduction red : kReductions) {
        const std::string k = "ls." + c.name + "." + reduction_name(red);
        CAPTURE(k);
        CAPTURE(rewind_layout);
        Tensor x = leaf(at("ls.logits")), target = leaf(probs);
        if (rewind_layout) {
          x = leaf(transpose(at("ls.logits")));
          target = leaf(transpose(probs));
        }
        Tensor value = smoothed_ce(c, x, target, cw, rewind_layout ? 0 : 1, red);
        if (rewind_layout) {  // the default class axis gives the same
          ClassLossOptions o{.reduction = red, .label_smoothing = c.eps};
          if (c.cw) o.class_weight = cw;
          if (!c.probs) o.ignore_index = c.ignore_index;
          const Tensor dflt = c.probs ? cross_entropy(x, target, o) : cross_entropy(x, labels_of(c.labels), o);
          CHECK(dflt.to_vector() == value.to_vector());
        }
        check_close(k + ".value", value.to_vector(), vec(k + ".value"), 1e-13, 1e-13);
        (red == Reduction::none ? sum(value * R) : value).backward();
        const std::vector<double> g = x.grad().to_vector();
        check_close(k + ".grad", rewind_layout ? transposed(g, C, N) : g, vec(k + ".grad"), 1e-13, 1e-13);
        if (c.probs) {
          const std::vector<double> tg = target.grad().to_vector();
          check_close(k + ".tgrad", rewind_layout ? transposed(tg, C, N) : tg, vec(k + ".tgrad"), 1e-13, 1e-13);
        }
      }
}

TEST_CASE("label_smoothing: float64 gradcheck of cross_entropy and nll_loss in logits, class_weight, weight and soft targets") {
  for (const SmoothCase& c : smooth_cases())
    for (Reduction red : kReductions) {
      CAPTURE(c.name);
      const std::string red_name = reduction_name(red);
    CAPTURE(red_name);
      Tensor x = leaf(at("ls.logits")), cw = leaf(at("ls.cw")), probs = leaf(at("ls.probs"));
      // a per-example weight too (differentiable), not a 0/1 mask
      Tensor w = leaf(Tensor::from_vector({0.5, 1.25, 2.0, 0.75, 1.0, 1.5}, {6}, float64));
      const GradcheckReport r = gradcheck(
          [&](const std::vector<Tensor>& in) {
            ClassLossOptions o{.reduction = red, .weight = in[3], .axis = 1, .label_smoothing = c.eps};
            if (c.cw) o.class_weight = in[1];
            if (c.probs) return cross_entropy(in[0], in[2], o);
            o.ignore_index = c.ignore_index;
            return cross_entropy(in[0], labels_of(c.labels), o);
          },
          {x, cw, probs, w});
      CHECK_MESSAGE(r, r.str());
      if (!c.probs) {  // nll_loss of log_softmax is cross_entropy, smoothing included
        ClassLossOptions o{.reduction = red, .axis = 1, .ignore_index = c.ignore_index, .label_smoothing = c.eps};
        if (c.cw) o.class_weight = at("ls.cw");
        const Tensor a = cross_entropy(at("ls.logits"), labels_of(c.labels), o);
        const Tensor b = nll_loss(log_softmax(at("ls.logits"), 1), labels_of(c.labels), o);
        check_close("nll = ce", b.to_vector(), a.to_vector(), 1e-14, 1e-14);
      }
    }
}

TEST_CASE("label_smoothing: 0 changes nothing, and a sequence (T, C, B) with a mask smooths per step") {
  const Tensor x = at("ls.logits"), cw = at("ls.cw");
  const Indices y = labels_of("ls.labels_ign");
  for (Reduction red : kReductions) {
    const ClassLossOptions o{.reduction = red, .axis = 1, .ignore_index = -100, .class_weight = cw};
    ClassLossOptions o0 = o;
    o0.label_smoothing = 0.0;
    CHECK(cross_entropy(x, y, o0).to_vector() == cross_entropy(x, y, o).to_vector());
  }
  // (T=2, C=5, B=3) with a (T, B) mask: each example's ℓ is the one of (N, C) row k = t·B + b, where the
  // mask zeroes the last example. Against the (N, C) PyTorch case idx_0.3_cw with labels_ign's ignored one:
  // the masked mean divides by Σ mask·cw[y].
  const Tensor seq = reshape(permute(reshape(x, {2, 3, 5}), {0, 2, 1}), {2, 5, 3});
  const Tensor mask = Tensor::from_vector({1, 1, 1, 1, 1, 0}, {2, 3}, float64);
  const Tensor l3 = cross_entropy(seq, y, {.reduction = Reduction::none, .weight = mask, .ignore_index = -100,
                                           .class_weight = cw, .label_smoothing = 0.25});
  const std::vector<double> want = vec("ls.idx_0.25_cw_ign.none.value");
  std::vector<double> masked = want;
  masked[5] = 0;
  check_close("(T, C, B) none", l3.to_vector(), masked, 1e-13, 1e-13);
}

TEST_CASE("label_smoothing hostile: outside [0, 1] or NaN is a ValueError naming the loss") {
  const Tensor x = at("ls.logits"), p = at("ls.probs");
  const Indices y = labels_of("ls.labels");
  for (double eps : std::vector<double>{-0.1, 1.5, NAN, INFINITY, -0.0 - 1e-300}) {
    CAPTURE(eps);
    refused<ValueError>([&] { cross_entropy(x, y, {.axis = 1, .label_smoothing = eps}); },
                        {"cross_entropy", "label_smoothing"});
    refused<ValueError>([&] { cross_entropy(x, p, {.axis = 1, .label_smoothing = eps}); },
                        {"cross_entropy", "label_smoothing"});
    refused<ValueError>([&] { nll_loss(x, y, {.axis = 1, .label_smoothing = eps}); }, {"nll_loss", "label_smoothing"});
  }
  // the ends are fine
  CHECK(std::isfinite(cross_entropy(x, y, {.axis = 1, .label_smoothing = 0.0}).item()));
  CHECK(std::isfinite(cross_entropy(x, y, {.axis = 1, .label_smoothing = 1.0}).item()));
}

// ============================================================================================
// binary_cross_entropy_with_logits: pos_weight
// ============================================================================================

TEST_CASE("pos_weight: binary_cross_entropy_with_logits with a per-class (C,) pos_weight on (C, B) matches PyTorch's (N, C)") {
  // PyTorch: x, t (N=4, C=3), pos_weight (3,) broadcast on the last axis. rewind: (C, B) = the transposes,
  // pos_weight (3,) along axis 0 — the same per-class weight; (C, 1) spells it right-aligned.
  const std::size_t N = 4, C = 3;
  const Tensor R = transpose(at("pw.R")), w = transpose(at("pw.w"));  // w: (1, B), per example
  struct Case {
    std::string name;
    Tensor pw;
    bool weighted;
  };
  const std::vector<Case> cases{
      {"class", at("pw.pw"), false},
      {"class", reshape(at("pw.pw"), {3, 1}), false},
      {"scalar", Tensor::from_vector({2.5}, {1}, float64), false},
      {"scalar", Tensor::scalar(2.5, float64), false},
      {"class_w", at("pw.pw"), true},
  };
  for (const Case& c : cases)
    for (Reduction red : kReductions) {
      const std::string k = "pw." + c.name + "." + reduction_name(red);
      CAPTURE(k);
      CAPTURE(c.pw.shape().str());
      Tensor x = leaf(transpose(at("pw.x"))), t = leaf(transpose(at("pw.t")));
      LossOptions o{.reduction = red, .pos_weight = c.pw};
      if (c.weighted) o.weight = w;
      const Tensor value = binary_cross_entropy_with_logits(x, t, o);
      const std::vector<double> v = value.to_vector();
      check_close(k + ".value", red == Reduction::none ? transposed(v, C, N) : v, vec(k + ".value"), 1e-13, 1e-13);
      (red == Reduction::none ? sum(value * R) : value).backward();
      check_close(k + ".grad", transposed(x.grad().to_vector(), C, N), vec(k + ".grad"), 1e-13, 1e-13);
      check_close(k + ".tgrad", transposed(t.grad().to_vector(), C, N), vec(k + ".tgrad"), 1e-13, 1e-13);
    }
  // pos_weight all ones is the plain loss
  const Tensor x = transpose(at("pw.x")), t = transpose(at("pw.t"));
  check_close("ones", binary_cross_entropy_with_logits(x, t, {.pos_weight = Tensor::ones({3}, float64)}).to_vector(),
              binary_cross_entropy_with_logits(x, t).to_vector(), 1e-15, 1e-15);
}

TEST_CASE("pos_weight: float64 gradcheck in logits, target and pos_weight, and a (T, C, B) sequence takes it along axis 1") {
  const Tensor x0 = transpose(at("pw.x")), t0 = transpose(at("pw.t"));
  // keep the logits off ±40 (σ saturates: the central difference is all rounding there)
  // and the targets off 0 and 1 (the central difference would step outside [0, 1], which is refused)
  Tensor x = leaf(clamp(x0, -3.0, 3.0)), t = leaf(clamp(t0, 0.05, 0.95)), pw = leaf(Tensor::from_vector({0.5, 3.0, 1.5}, {3}, float64));
  for (Reduction red : kReductions) {
    const std::string red_name = reduction_name(red);
    CAPTURE(red_name);
    const GradcheckReport r = gradcheck(
        [&](const std::vector<Tensor>& in) {
          return binary_cross_entropy_with_logits(in[0], in[1], {.reduction = red, .pos_weight = in[2]});
        },
        {x, t, pw});
    CHECK_MESSAGE(r, r.str());
  }
  // (T=2, C=3, B=4): a (3,) pos_weight lies on the features axis 1, as (3, 1) does right-aligned, and each
  // time step equals the (C, B) loss
  const Tensor seq = stack({x0, x0 * 0.5}), tseq = stack({t0, t0});
  const Tensor a = binary_cross_entropy_with_logits(seq, tseq, {.reduction = Reduction::none, .pos_weight = at("pw.pw")});
  const Tensor b = binary_cross_entropy_with_logits(seq, tseq, {.reduction = Reduction::none,
                                                               .pos_weight = reshape(at("pw.pw"), {3, 1})});
  CHECK(a.to_vector() == b.to_vector());
  const std::vector<double> step0 =
      binary_cross_entropy_with_logits(x0, t0, {.reduction = Reduction::none, .pos_weight = at("pw.pw")}).to_vector();
  const std::vector<double> av = a.to_vector();
  check_close("step 0", std::vector<double>(av.begin(), av.begin() + 12), step0, 0, 0);
}

TEST_CASE("pos_weight hostile: negative, NaN, infinite, a shape that does not broadcast, another loss, another dtype") {
  const Tensor x = transpose(at("pw.x")), t = transpose(at("pw.t"));  // (3, 4)
  const char* loss = "binary_cross_entropy_with_logits";
  for (double bad : std::vector<double>{-0.5, NAN, INFINITY}) {
    CAPTURE(bad);
    refused<ValueError>([&] {
      binary_cross_entropy_with_logits(x, t, {.pos_weight = Tensor::from_vector({1.0, bad, 1.0}, {3}, float64)});
    }, {loss, "pos_weight", "(1,)"});
  }
  // a (4,) per-class weight for 3 classes (PyTorch, right-aligned, would take it as per-column)
  refused<ShapeError>([&] { binary_cross_entropy_with_logits(x, t, {.pos_weight = Tensor::ones({4}, float64)}); },
                      {loss, "pos_weight", "(4,)", "(3, 4)"});
  refused<ShapeError>([&] { binary_cross_entropy_with_logits(x, t, {.pos_weight = Tensor::ones({2, 1}, float64)}); },
                      {loss, "pos_weight", "(2, 1)", "(3, 4)"});
  refused<ShapeError>([&] { binary_cross_entropy_with_logits(x, t, {.pos_weight = Tensor::ones({1, 3, 4}, float64)}); },
                      {loss, "(1, 3, 4)", "(3, 4)"});
  const Tensor x4 = Tensor::zeros({2, 3, 2, 2}, float64);
  refused<ShapeError>([&] { binary_cross_entropy_with_logits(x4, x4, {.pos_weight = Tensor::ones({3}, float64)}); },
                      {loss, "(3,)", "(2, 3, 2, 2)", "features axis"});
  // right-aligned on 4-D is fine
  CHECK(std::isfinite(binary_cross_entropy_with_logits(x4, x4, {.pos_weight = Tensor::ones({3, 1, 1}, float64)}).item()));
  refused<DtypeError>([&] { binary_cross_entropy_with_logits(x, t, {.pos_weight = Tensor::ones({3}, float32)}); },
                      {loss, "pos_weight"});
  refused<ValueError>([&] { mse_loss(x, t, {.pos_weight = Tensor::ones({3}, float64)}); }, {"mse_loss", "pos_weight"});
  refused<ValueError>([&] { binary_cross_entropy(t, t, {.pos_weight = Tensor::ones({3}, float64)}); },
                      {"binary_cross_entropy", "pos_weight"});
}

// ============================================================================================
// Schedules: MultiStepLR, LinearLR, LambdaLR
// ============================================================================================

namespace {

using Scheds = std::vector<std::unique_ptr<LRScheduler>>;

struct SchedCase {
  std::string name;
  std::function<Scheds(Optimizer&)> make;
  std::map<int, double> manual = {};  // epoch → lr set by hand after that epoch's step
};

template <class S, class... A>
std::function<Scheds(Optimizer&)> one(A... args) {
  return [=](Optimizer& o) {
    Scheds v;
    v.push_back(std::make_unique<S>(o, args...));
    return v;
  };
}

double warm_cos(std::size_t e) {
  return e < 5 ? (static_cast<double>(e) + 1) / 5 : 0.5 * (1 + std::cos(M_PI * (static_cast<double>(e) - 5) / 25));
}

const std::vector<SchedCase>& sched_cases() {
  using V = std::vector<std::int64_t>;
  using F = std::function<double(std::size_t)>;
  static const std::vector<SchedCase> c{
      {"multistep", one<MultiStepLR>(V{3, 7, 20}, 0.5)},
      {"multistep_unsorted_dup", one<MultiStepLR>(V{12, 4, 12, 25}, 0.3)},
      {"multistep_gamma3", one<MultiStepLR>(V{2, 5}, 3.0)},
      {"linear_warmup", one<LinearLR>(0.1, 1.0, std::int64_t{8})},
      {"linear_default", [](Optimizer& o) { Scheds v; v.push_back(std::make_unique<LinearLR>(o)); return v; }},
      {"linear_decay_to0", one<LinearLR>(1.0, 0.0, std::int64_t{10})},
      {"linear_t1", one<LinearLR>(0.5, 0.9, std::int64_t{1})},
      {"lambda_inv", one<LambdaLR>(F([](std::size_t e) { return 1.0 / (1 + static_cast<double>(e)); }))},
      {"lambda_warm_cos", one<LambdaLR>(F(warm_cos))},
      {"warmup_then_multistep",
       [](Optimizer& o) {
         Scheds v;
         v.push_back(std::make_unique<LinearLR>(o, 0.25, 1.0, 4));
         v.push_back(std::make_unique<MultiStepLR>(o, V{10, 15, 15}, 0.5));
         return v;
       }},
      {"lambda_manual", one<LambdaLR>(F([](std::size_t e) { return std::pow(0.9, static_cast<double>(e)); })), {{6, 0.5}}},
      {"multistep_manual", one<MultiStepLR>(V{5, 10}, 0.1), {{7, 0.02}}},
      {"linear_manual", one<LinearLR>(0.2, 1.0, std::int64_t{6}), {{3, 0.5}}},
  };
  return c;
}

}  // namespace

TEST_CASE("schedules: MultiStepLR, LinearLR, LambdaLR — 30-step lr trajectories on SGD match PyTorch's, chained and with a manual lr") {
  std::size_t n = 0;
  for (const auto& [k, t] : ref()) n += k.starts_with("sched.");
  REQUIRE(n == sched_cases().size());
  for (const SchedCase& s : sched_cases()) {
    CAPTURE(s.name);
    const std::vector<double> want = vec("sched." + s.name);
    Tensor w = Tensor::zeros({1}, float64).set_requires_grad();
    SGD opt({w}, {.lr = 0.1});
    Scheds scheds = s.make(opt);
    std::vector<double> got{opt.lr()};  // construction: LinearLR and LambdaLR already set epoch 0's lr
    CHECK(scheds.back()->last_lr() == opt.lr());
    for (int e = 1; e < static_cast<int>(want.size()); ++e) {
      for (auto& sc : scheds) sc->step();
      if (s.manual.count(e)) opt.set_lr(s.manual.at(e));
      got.push_back(opt.lr());
    }
    check_close(s.name, got, want, 1e-16, 1e-13);
    CHECK(scheds[0]->last_epoch() == 30);
  }
}

TEST_CASE("schedules: MultiStepLR, LinearLR, LambdaLR resume from state_dict mid-run and name themselves") {
  using F = std::function<double(std::size_t)>;
  const std::vector<std::pair<std::string, std::function<std::unique_ptr<LRScheduler>(Optimizer&)>>> table{
      {"MultiStepLR", [](Optimizer& o) { return std::make_unique<MultiStepLR>(o, std::vector<std::int64_t>{3, 9, 9}, 0.5); }},
      {"LinearLR", [](Optimizer& o) { return std::make_unique<LinearLR>(o, 0.2, 0.8, 12); }},
      {"LambdaLR", [](Optimizer& o) { return std::make_unique<LambdaLR>(o, F([](std::size_t e) { return 1.0 / (1.0 + e); })); }},
  };
  for (const auto& [name, make] : table) {
    CAPTURE(name);
    Tensor w = Tensor::zeros({1}, float64).set_requires_grad();
    SGD straight_opt({w}, {.lr = 0.1});
    auto straight = make(straight_opt);
    CHECK(std::string(straight->name()) == name);
    std::vector<double> want;
    for (int e = 1; e <= 20; ++e) straight->step(), want.push_back(straight_opt.lr());

    SGD first({w}, {.lr = 0.1});
    auto a = make(first);
    for (int e = 1; e <= 7; ++e) a->step();
    const StateDict saved = a->state_dict();
    const double lr = first.lr();  // the optimizer's own state carries it
    SGD second({w}, {.lr = 0.1});
    auto b = make(second);
    b->load_state_dict(saved);
    second.set_lr(lr);
    CHECK(b->last_epoch() == 7);
    std::vector<double> got(want.begin(), want.begin() + 7);
    for (int e = 8; e <= 20; ++e) b->step(), got.push_back(second.lr());
    check_close(name, got, want, 0, 1e-15);
  }
}

TEST_CASE("schedules hostile: bad milestones, gamma, factors, total_iters and a factor function whose lr is negative or not finite are refused by name") {
  Tensor w = Tensor::zeros({1}, float64).set_requires_grad();
  SGD opt({w}, {.lr = 0.1});
  using V = std::vector<std::int64_t>;
  refused<ValueError>([&] { MultiStepLR(opt, V{3, 0}); }, {"MultiStepLR", "milestone", "0"});
  refused<ValueError>([&] { MultiStepLR(opt, V{-2, 3}); }, {"MultiStepLR", "milestone", "-2"});
  for (double g : std::vector<double>{-0.5, NAN, INFINITY}) {
    CAPTURE(g);
    refused<ValueError>([&] { MultiStepLR(opt, V{3}, g); }, {"MultiStepLR", "gamma"});
  }
  {  // γ = 0 is accepted, as by StepLR and ExponentialLR (and PyTorch): the lr is 0 from the milestone on
    Tensor v = Tensor::zeros({1}, float64).set_requires_grad();
    SGD own({v}, {.lr = 0.1});
    MultiStepLR zero(own, V{2}, 0.0);
    zero.step();
    CHECK(own.lr() == 0.1);
    zero.step();
    CHECK(own.lr() == 0.0);
  }
  for (double s : std::vector<double>{0.0, -0.1, 1.5, NAN}) {
    CAPTURE(s);
    refused<ValueError>([&] { LinearLR(opt, s); }, {"LinearLR", "start_factor"});
  }
  for (double f : std::vector<double>{-0.1, 1.01, NAN}) {
    CAPTURE(f);
    refused<ValueError>([&] { LinearLR(opt, 0.5, f); }, {"LinearLR", "end_factor"});
  }
  refused<ValueError>([&] { LinearLR(opt, 0.5, 1.0, 0); }, {"LinearLR", "total_iters"});
  refused<ValueError>([&] { LinearLR(opt, 0.5, 1.0, -3); }, {"LinearLR", "total_iters"});
  refused<ValueError>([&] { LambdaLR(opt, nullptr); }, {"LambdaLR", "empty"});
  refused<ValueError>([&] { LambdaLR(opt, [](std::size_t) { return -1.0; }); }, {"LambdaLR", "epoch 0"});
  refused<ValueError>([&] { LambdaLR(opt, [](std::size_t) { return NAN; }); }, {"LambdaLR", "epoch 0"});
  CHECK(opt.lr() == 0.1);  // a refused construction leaves the lr alone
  // a factor that goes negative at epoch 3: step() refuses it and changes nothing
  LambdaLR bad(opt, [](std::size_t e) { return 1.0 - 0.4 * static_cast<double>(e); });
  bad.step(), bad.step();
  const double lr = opt.lr();
  refused<ValueError>([&] { bad.step(); }, {"LambdaLR", "epoch 3"});
  CHECK(opt.lr() == lr);
  CHECK(bad.last_epoch() == 2);
  // a factor function that throws at epoch 2: its exception passes through, and the step did not happen
  SGD opt3({w}, {.lr = 0.1});
  LambdaLR throws(opt3, [](std::size_t e) {
    if (e == 2) throw std::runtime_error("no factor for epoch 2");
    return 0.5;
  });
  throws.step();
  CHECK_THROWS_WITH_AS(throws.step(), "no factor for epoch 2", std::runtime_error);
  CHECK(throws.last_epoch() == 1);
  CHECK(opt3.lr() == 0.05);
  // an empty milestone list is a constant lr, as PyTorch's
  SGD opt2({w}, {.lr = 0.1});
  MultiStepLR none(opt2, {});
  for (int e = 0; e < 5; ++e) none.step();
  CHECK(opt2.lr() == 0.1);
}
