// Session 14 audit of the primitive ops' first and second derivatives against PyTorch.
//
// tests/ref/make_autograd_parity_s14.py (PyTorch 1.13, float64) wrote parity/s14/autograd.npz: for every
// primitive op (and the compositions second-order code leans on) on shapes with broadcasting, size-1
// and size-0 dimensions, the inputs x, weights w, u (L = Σ w⊙y + Σ u⊙y⊙y, so that ∂L/∂y depends on x
// and a linear op's recorded backward is differentiated too), a direction v per input, and PyTorch's
// y, g = ∂L/∂x, h = ∂⟨g, v⟩/∂x (a Hessian-vector product through create_graph) and n = ∂‖g‖²/∂x (a
// gradient penalty, WGAN-GP's). Each is compared with rewind's, and h also with a central difference
// of rewind's own first derivative (not only PyTorch's word). Then PyTorch's conventions at kinks and
// domain edges (relu'(0), ties, sqrt and log at 0, pow with a zero base, division by zero, clamp at
// its bounds), first and second derivatives; then the tape's edges a second-order user meets.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <rewind.hpp>

#include "support.hpp"

using namespace rwd;

namespace {

const RefFile& ref() {
  static const RefFile file("parity/s14/autograd.npz");
  return file;
}

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;
using In = const std::vector<Tensor>&;

// The script's index rules, the same here.
Indices repeated(std::size_t n) {  // every index, then the last and the first again
  Indices idx;
  for (std::size_t i = 0; i < n; ++i) idx.push_back(static_cast<std::int64_t>(i));
  if (n > 0) idx.insert(idx.end(), {static_cast<std::int64_t>(n - 1), 0});
  return idx;
}

// The ops by the script's case names (before the '@'); `constants`: inputs that take no gradient.
struct Op {
  Fn f;
  std::set<std::size_t> constants = {};
};

std::map<std::string, Op> ops() {
  std::map<std::string, Op> t;
  t["add"] = {[](In x) { return add(x[0], x[1]); }};
  t["sub"] = {[](In x) { return sub(x[0], x[1]); }};
  t["mul"] = {[](In x) { return mul(x[0], x[1]); }};
  t["div"] = {[](In x) { return div(x[0], x[1]); }};
  t["neg"] = {[](In x) { return neg(x[0]); }};
  for (const double p : {2.5, -1.5, 3.0, 2.0, 1.0, 0.0, 0.5, -2.0}) {
    char name[32];
    std::snprintf(name, sizeof name, "pow%g", p);
    t[name] = {[p](In x) { return pow(x[0], p); }};
  }
  t["pow_tensor"] = {[](In x) { return pow(x[0], x[1]); }};
  t["exp"] = {[](In x) { return exp(x[0]); }};
  t["log"] = {[](In x) { return log(x[0]); }};
  t["log1p"] = {[](In x) { return log1p(x[0]); }};
  t["tanh"] = {[](In x) { return tanh(x[0]); }};
  t["sigmoid"] = {[](In x) { return sigmoid(x[0]); }};
  t["relu"] = {[](In x) { return relu(x[0]); }};
  t["abs"] = {[](In x) { return abs(x[0]); }};
  t["sqrt"] = {[](In x) { return sqrt(x[0]); }};
  t["clamp"] = {[](In x) { return clamp(x[0], -0.5, 0.8); }};
  t["where"] = {[](In x) { return where(x[0], x[1], x[2]); }, {0}};
  t["cast"] = {[](In x) { return cast(cast(x[0], float32), float64); }};
  for (const bool ta : {false, true})
    for (const bool tb : {false, true})
      t["matmul" + std::to_string(ta) + std::to_string(tb)] = {[ta, tb](In x) { return matmul(x[0], x[1], ta, tb); }};
  t["affine"] = {[](In x) { return affine(x[0], x[1], x[2]); }};
  t["affine_base"] = {[](In x) { return affine(x[0], x[1], x[2], x[3]); }};
  t["permute"] = {[](In x) { return permute(x[0], {2, 0, 1}); }};
  t["reshape"] = {[](In x) {
    const std::size_t last = x[0].dim(-1);
    return reshape(x[0], Shape{last, x[0].numel() / last});
  }};
  t["broadcast_to"] = {[](In x) {
    Shape target{2};
    for (std::size_t d : x[0].shape()) target.push_back(d == 1 ? 3 : d);
    return broadcast_to(x[0], target);
  }};
  t["slice_step"] = {[](In x) { return slice(x[0], -1, 1, x[0].dim(-1), 2); }};
  t["slice0"] = {[](In x) { return slice(x[0], 0, 1, x[0].dim(0) - 1); }};
  t["slice_view"] = {[](In x) { return exp(slice(permute(x[0], {1, 0}), 0, 1, 3)); }};
  t["concat"] = {[](In x) { return concat(x, 1); }};
  t["stack"] = {[](In x) { return stack(x, -1); }};
  t["sum"] = {[](In x) { return sum(x[0]); }};
  t["sum_axes"] = {[](In x) { return sum(x[0], {0, -1}); }};
  t["sum_keep"] = {[](In x) { return sum(x[0], {1}, true); }};
  t["max_axis"] = {[](In x) { return max(x[0], 1); }};
  t["max_all"] = {[](In x) { return max(x[0]); }};
  t["min_all"] = {[](In x) { return min(x[0]); }};
  t["index_select"] = {[](In x) { return index_select(x[0], 0, repeated(x[0].dim(0))); }};
  t["gather"] = {[](In x) {
    const Shape is = with_dim(x[0].shape(), 1, 5);
    return gather(x[0], 1, spread_index(is, x[0].dim(1)), is);
  }};
  t["index_add"] = {[](In x) { return index_add(x[0], with_dim(x[0].shape(), 0, 3), 0, repeated(3)); }};
  t["scatter_add"] = {[](In x) {
    const Shape is = x[0].shape();
    return scatter_add(x[0], with_dim(is, 1, 3), 1, spread_index(is, 3), is);
  }};
  t["softmax"] = {[](In x) { return softmax(x[0], -1); }};
  t["log_softmax"] = {[](In x) { return log_softmax(x[0], -1); }};
  t["logsumexp"] = {[](In x) { return logsumexp(x[0], -1); }};
  return t;
}

// Equal within rtol·|want| + atol, NaN where PyTorch has NaN, the same infinity where it has one.
void check_close(const Tensor& got, const Tensor& want, const std::string& what, double rtol = 1e-8,
                 double atol = 1e-10) {
  REQUIRE_MESSAGE(got.defined(), what << ": undefined, PyTorch has " << want.shape().str());
  REQUIRE_MESSAGE(got.shape() == want.shape(), what << ": shape " << got.shape().str() << ", PyTorch's " << want.shape().str());
  const std::vector<double> a = got.to_vector(), b = want.to_vector();
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const bool ok = std::isnan(b[i])   ? std::isnan(a[i])
                    : std::isinf(b[i]) ? a[i] == b[i]
                                       : std::abs(a[i] - b[i]) <= atol + rtol * std::abs(b[i]);
    if (!ok && bad++ == 0) first = i;
  }
  CHECK_MESSAGE(bad == 0, what << ": " << bad << " of " << a.size() << " elements differ; first at " << first << ": "
                               << (bad ? a[first] : 0.0) << ", PyTorch " << (bad ? b[first] : 0.0));
}

Tensor zeros_where_undefined(const Tensor& g, const Tensor& like) {
  return g.defined() ? g : Tensor::zeros(like.shape(), like.dtype());
}

// L = Σ w⊙y + Σ u⊙y⊙y and its gradients with respect to `diff` (create_graph as asked).
std::vector<Tensor> first(const Fn& f, const std::vector<Tensor>& xs, const std::vector<Tensor>& diff, const Tensor& w,
                          const Tensor& u, bool create_graph, Tensor* y_out = nullptr) {
  const Tensor y = f(xs);
  if (y_out) *y_out = y.detach();
  const Tensor L = sum(w * y) + sum(u * y * y);
  return grad({L}, diff, {}, SweepOptions{.create_graph = create_graph}, true);
}

// The gradients of a scalar built from create_graph gradients (zeros where it does not reach).
std::vector<Tensor> second(const Tensor& s, const std::vector<Tensor>& diff) {
  std::vector<Tensor> out;
  if (!s.requires_grad()) {
    for (const Tensor& x : diff) out.push_back(Tensor::zeros(x.shape(), x.dtype()));
    return out;
  }
  const std::vector<Tensor> r = grad({s}, diff, {}, {}, true);
  for (std::size_t i = 0; i < diff.size(); ++i) out.push_back(zeros_where_undefined(r[i], diff[i]));
  return out;
}

void check_case(const std::string& c, const Op& op) {
  const RefFile& r = ref();
  std::vector<Tensor> xs, diff, vs;
  for (std::size_t i = 0; r.all().count("p." + c + ".x" + std::to_string(i)); ++i) {
    Tensor x = r.at("p." + c + ".x" + std::to_string(i)).detach();
    if (!op.constants.count(i)) {
      x.set_requires_grad();
      vs.push_back(r.at("p." + c + ".v" + std::to_string(diff.size())));
      diff.push_back(x);
    }
    xs.push_back(x);
  }
  const Tensor &w = r.at("p." + c + ".w"), &u = r.at("p." + c + ".u");
  bool any_empty = false;
  for (const Tensor& x : xs) any_empty = any_empty || x.numel() == 0;

  // First derivatives, then ⟨g, v⟩ and ‖g‖² differentiated again.
  Tensor y;
  std::vector<Tensor> g = first(op.f, xs, diff, w, u, true, &y);
  check_close(y, r.at("p." + c + ".y"), c + " y");
  Tensor hv = Tensor::scalar(0, float64), gn = Tensor::scalar(0, float64);
  for (std::size_t i = 0; i < diff.size(); ++i) {
    check_close(g[i], r.at("p." + c + ".g" + std::to_string(i)), c + " g" + std::to_string(i));
    hv = hv + sum(g[i] * vs[i]);
  }
  // Every gradient has a history here (∂L/∂y = w + 2u⊙y depends on x), unless nothing is there to have
  // one or y = x⁰ is a constant (PyTorch's gradient is zeros without a history too).
  if (!any_empty && c.rfind("pow0@", 0) != 0) CHECK_MESSAGE(hv.requires_grad(), c << ": the create_graph gradient has no history");
  const std::vector<Tensor> h = second(hv, diff);
  g = first(op.f, xs, diff, w, u, true);
  for (std::size_t i = 0; i < diff.size(); ++i) gn = gn + sum(g[i] * g[i]);
  const std::vector<Tensor> n = second(gn, diff);
  for (std::size_t i = 0; i < diff.size(); ++i) {
    check_close(h[i], r.at("p." + c + ".h" + std::to_string(i)), c + " h" + std::to_string(i), 1e-7, 1e-9);
    check_close(n[i], r.at("p." + c + ".n" + std::to_string(i)), c + " n" + std::to_string(i), 1e-7, 1e-9);
  }

  // h against a central difference of the first derivative along v: (g(x + εv) − g(x − εv)) / 2ε.
  if (c.rfind("cast", 0) == 0) return;  // float32 inside: a difference at ε = 1e-6 is rounding
  const double eps = 1e-6;
  std::vector<std::vector<Tensor>> at(2);
  for (int side = 0; side < 2; ++side) {
    std::vector<Tensor> xp, dp;
    std::size_t k = 0;
    for (std::size_t i = 0; i < xs.size(); ++i) {
      if (op.constants.count(i)) {
        xp.push_back(xs[i]);
        continue;
      }
      Tensor t;
      {
        NoGradGuard off;
        t = (xs[i] + vs[k++] * (side ? -eps : eps)).detach();
      }
      t.set_requires_grad();
      xp.push_back(t);
      dp.push_back(t);
    }
    at[side] = first(op.f, xp, dp, w, u, false);
  }
  for (std::size_t i = 0; i < diff.size(); ++i) {
    const Tensor numeric = (zeros_where_undefined(at[0][i], diff[i]) - zeros_where_undefined(at[1][i], diff[i])) / (2 * eps);
    check_close(h[i], numeric.detach(), c + " h" + std::to_string(i) + " against a central difference", 1e-3, 1e-5);
  }
}

}  // namespace

TEST_CASE("audit s14: every primitive's first and second derivatives equal PyTorch's, shapes with size-1 and size-0 dims") {
  const auto table = ops();
  std::set<std::string> seen;
  std::size_t cases = 0;
  for (const auto& [key, value] : ref().all()) {
    if (key.rfind("p.", 0) != 0 || key.size() < 4 || key.compare(key.size() - 2, 2, ".y") != 0) continue;
    const std::string c = key.substr(2, key.size() - 4);
    const std::string name = c.substr(0, c.find('@'));
    const auto it = table.find(name);
    REQUIRE_MESSAGE(it != table.end(), "the reference has case " << c << " but the test has no op " << name);
    seen.insert(name);
    CAPTURE(c);
    Tape tape;
    check_case(c, it->second);
    ++cases;
  }
  CHECK(seen.size() == table.size());  // every op of the table was in the reference
  CHECK(cases > 200);
}

namespace {

// The kink cases: L = Σ f(x), g = ∂L/∂x (create_graph), h = ∂ Σ g / ∂x; zeros where g has no history.
void check_kink(const std::string& name, const Fn& f, std::size_t n_inputs = 1) {
  CAPTURE(name);
  const RefFile& r = ref();
  const std::string k = "k." + name + ".";
  auto key = [&](const char* what, std::size_t i) { return k + what + (n_inputs == 1 ? "" : std::to_string(i)); };
  Tape tape;
  std::vector<Tensor> xs;
  for (std::size_t i = 0; i < n_inputs; ++i) xs.push_back(r.at(key("x", i)).detach().set_requires_grad());
  const Tensor y = f(xs);
  check_close(y, r.at(k + "y"), name + " y", 1e-12, 0);
  // L = Σ y, or Σ s⊙y with the case's seed s (an infinite or NaN adjoint from upstream)
  const bool seeded = r.all().count(k + "s") > 0;
  const std::vector<Tensor> g = grad({seeded ? y : sum(y)}, xs, {seeded ? r.at(k + "s") : Tensor()},
                                     SweepOptions{.create_graph = true}, true);
  Tensor s;
  for (std::size_t i = 0; i < n_inputs; ++i) {
    check_close(zeros_where_undefined(g[i], xs[i]), r.at(key("g", i)), name + " g" + std::to_string(i), 1e-12, 0);
    if (g[i].defined() && g[i].requires_grad()) s = s.defined() ? s + sum(g[i]) : sum(g[i]);
  }
  const std::vector<Tensor> h = s.defined() ? second(s, xs) : second(Tensor::scalar(0, float64), xs);
  for (std::size_t i = 0; i < n_inputs; ++i) check_close(h[i], r.at(key("h", i)), name + " h" + std::to_string(i), 1e-12, 0);
}

}  // namespace

TEST_CASE("audit s14: kinks and edges follow PyTorch in the first and second derivative") {
  auto one = [](Tensor (*f)(const Tensor&)) { return [f](In x) { return f(x[0]); }; };
  check_kink("relu", one(relu));
  check_kink("abs", one(abs));
  check_kink("sqrt", one(sqrt));
  check_kink("log", one(log));
  check_kink("log1p", one(log1p));
  check_kink("clamp", [](In x) { return clamp(x[0], -0.5, 0.8); });
  check_kink("clamp_point", [](In x) { return clamp(x[0], 0.25, 0.25); });
  check_kink("sigmoid_far", one(sigmoid));
  check_kink("tanh_far", one(tanh));
  check_kink("exp_far", one(exp));
  for (const double p : {0.0, 0.5, 1.0, 1.5, 2.0, 3.0, -1.0, -2.0, 2.5}) {
    char name[32];
    std::snprintf(name, sizeof name, "pow%g", p);
    check_kink(name, [p](In x) { return pow(x[0], p); });
  }
  check_kink("pow_tensor", [](In x) { return pow(x[0], x[1]); }, 2);
  check_kink("div0", [](In x) { return div(x[0], x[1]); }, 2);
  // An infinite or NaN adjoint where the op passes nothing on gives 0 there, as PyTorch's selecting
  // backward rules do (sqrt(relu(x)) has gradient 0 where x ≤ 0, not inf·0 = NaN) — and propagates
  // where PyTorch multiplies (pow's exponent at a zero base).
  check_kink("relu_inf_seed", one(relu));
  check_kink("clamp_inf_seed", [](In x) { return clamp(x[0], 0.0, 1.0); });
  check_kink("sqrt_of_relu", [](In x) { return sqrt(relu(x[0])); });
  check_kink("sqrt_of_clamp", [](In x) { return sqrt(clamp(x[0], 0.0, 10.0)); });
  check_kink("max_axis_inf_seed", [](In x) { return max(x[0], 1); });
  check_kink("max_all_inf_seed", [](In x) { return max(x[0]); });
  check_kink("min_all_nan_seed", [](In x) { return min(x[0]); });
  check_kink("pow_tensor_nan_seed", [](In x) { return pow(x[0], x[1]); }, 2);
  check_kink("max_axis_ties", [](In x) { return max(x[0], 0); });
  check_kink("min_axis_ties", [](In x) { return min(x[0], 1); });
  check_kink("max_all_ties", [](In x) { return max(x[0]); });
  check_kink("min_all_ties", [](In x) { return min(x[0]); });
}

TEST_CASE("audit s14: a second backward through a retained create_graph tape gives the same Hessian-vector product") {
  // f = Σ tanh(x²): g = 2x(1 − tanh²(x²)); h = ∂⟨g, v⟩/∂x = v ⊙ (2(1 − t²) − 8x²t(1 − t²)), t = tanh(x²)
  Tape tape;
  Tensor x = Tensor::from_vector({0.3, -0.7, 1.1}, {3}, float64).set_requires_grad();
  const Tensor v = Tensor::from_vector({1.0, -2.0, 0.5}, {3}, float64);
  const Tensor g = grad({sum(tanh(x * x))}, {x}, {}, SweepOptions{.create_graph = true})[0];
  const Tensor hv = sum(g * v);
  std::vector<double> want;
  for (std::size_t i = 0; i < 3; ++i) {
    const double xi = x.to_vector()[i], t = std::tanh(xi * xi), vi = v.to_vector()[i];
    want.push_back(vi * (2 * (1 - t * t) - 8 * xi * xi * t * (1 - t * t)));
  }
  backward(hv, Tensor(), SweepOptions{.retain = true});
  check_close(x.grad(), Tensor::from_vector(want, {3}, float64), "first backward", 1e-12, 0);
  backward(hv);  // accumulates: twice the product
  for (double& w : want) w *= 2;
  check_close(x.grad(), Tensor::from_vector(want, {3}, float64), "second backward", 1e-12, 0);
  CHECK_CONTAINS_ONCE(message_of<TapeError>([&] { backward(hv); }), "retain");  // the tape is gone now
}

TEST_CASE("audit s14: a gradient with no history, a non-scalar root without a seed, mixed dtypes, unused inputs") {
  Tape tape;
  Tensor x = Tensor::from_vector({1.0, 2.0, 3.0, 4.0, 5.0, 6.0}, {2, 3}, float64).set_requires_grad();
  const Tensor w = Tensor::from_vector({1.0, -1.0, 2.0, 0.5, 3.0, -2.0}, {2, 3}, float64);
  // Linear in x: the create_graph gradient is w, a constant; differentiating it again is refused, naming
  // what to do (PyTorch: "element 0 of tensors does not require grad").
  const Tensor g = grad({sum(x * w)}, {x}, {}, SweepOptions{.create_graph = true})[0];
  check_close(g, w, "g");
  CHECK_CONTAINS_ONCE(message_of<TapeError>([&] { grad({sum(g)}, {x}); }), "does not require a gradient");
  // A non-scalar root without a seed: its shape and what to pass (backward, grad, and a gradient).
  const Tensor y = x * x;
  CHECK_CONTAINS_ONCE(message_of<TapeError>([&] { grad({y}, {x}); }), "grad: the output has shape (2, 3); pass a seed");
  CHECK_CONTAINS_ONCE(message_of<TapeError>([&] { backward(y, Tensor(), SweepOptions{.retain = true}); }),
                      "backward: the output has shape (2, 3); pass a seed");
  const Tensor g2 = grad({sum(y * y)}, {x}, {}, SweepOptions{.create_graph = true})[0];
  CHECK_CONTAINS_ONCE(message_of<TapeError>([&] { backward(g2, Tensor(), SweepOptions{.retain = true}); }),
                      "the output has shape (2, 3)");
  // An input nothing used: undefined with allow_unused, else named.
  Tensor unused = Tensor::zeros({4}, float64).set_requires_grad().set_name("unused");
  const std::vector<Tensor> r = grad({sum(g2)}, {x, unused}, {}, SweepOptions{.retain = true}, true);
  check_close(r[0], (x * x * 12.0).detach(), "d Σ 4x³ / dx");
  CHECK_FALSE(r[1].defined());
  CHECK_CONTAINS_ONCE(message_of<TapeError>([&] { grad({sum(g2)}, {x, unused}, {}, SweepOptions{.retain = true}); }),
                      "unused");
  // Mixed dtypes are refused by name (PyTorch promotes; rewind asks for .to(), README "Tensors"), and a
  // float32 operand converted with to() carries its gradient back in float32.
  Tensor f = Tensor::from_vector({1.5, -2.0, 0.25, 4.0, 1.0, -1.0}, {2, 3}, float32).set_requires_grad();
  CHECK_CONTAINS_ONCE(message_of<DtypeError>([&] { mul(x, f); }), "mul: lhs is float64 and rhs is float32");
  CHECK_CONTAINS_ONCE(message_of<DtypeError>([&] { where(w, x, f); }), "where");
  const std::vector<Tensor> gf = grad({sum(exp(x * f.to(float64)))}, {f}, {}, SweepOptions{.create_graph = true});
  CHECK(gf[0].dtype() == float32);
  const Tensor hf = grad({sum(gf[0])}, {f})[0];  // ∂/∂f Σ x e^{xf} = x² e^{xf}
  CHECK(hf.dtype() == float32);
  std::vector<double> want;
  for (std::size_t i = 0; i < 6; ++i) {
    const double xi = x.to_vector()[i], fi = f.to_vector()[i];
    want.push_back(xi * xi * std::exp(xi * fi));
  }
  check_close(hf.to(float64), Tensor::from_vector(want, {2, 3}, float64), "float32 second derivative", 1e-5, 0);
}

TEST_CASE("audit s14: logsumexp of a lane of -inf is -inf and of a lane holding +inf is +inf, as PyTorch") {
  // PyTorch shifts by the lane's max only where it is finite (logsumexp_out_impl: masked_fill of
  // |max| = inf with 0); x − max would be −inf − (−inf) = NaN.
  const double inf = std::numeric_limits<double>::infinity();
  Tape tape;
  Tensor x = Tensor::from_vector({-inf, -inf, 1.0, 2.0, inf, 0.5}, {3, 2}, float64).set_requires_grad();
  const Tensor y = logsumexp(x, 1);
  const std::vector<double> v = y.to_vector();
  CHECK(v[0] == -inf);
  CHECK(v[1] == doctest::Approx(2.0 + std::log1p(std::exp(-1.0))));
  CHECK(v[2] == inf);
  // The finite lane's gradient is its softmax (PyTorch's: exp(x − y); NaN in the other two lanes).
  const std::vector<double> g = grad({sum(y * Tensor::from_vector({0.0, 1.0, 0.0}, {3}, float64))}, {x})[0].to_vector();
  CHECK(g[2] == doctest::Approx(1.0 / (1.0 + std::exp(1.0))));
  CHECK(g[3] == doctest::Approx(1.0 / (1.0 + std::exp(-1.0))));
}

TEST_CASE("audit s14: double backward through affine with a wide base, affine_steps and affine_seq (central differences)") {
  Generator gen(14);
  Tensor W = (Tensor::randn({3, 4}, gen, float64)).set_requires_grad().set_name("W");
  Tensor x = (Tensor::randn({4, 2}, gen, float64)).set_requires_grad().set_name("x");
  Tensor b = (Tensor::randn({3}, gen, float64)).set_requires_grad().set_name("b");
  Tensor base = (Tensor::randn({3, 5}, gen, float64)).set_requires_grad().set_name("base");
  Tensor x2 = (Tensor::randn({4, 3}, gen, float64)).set_requires_grad().set_name("x2");
  Tensor seq = (Tensor::randn({3, 4, 2}, gen, float64)).set_requires_grad().set_name("seq");
  // Squared, so that the incoming adjoint depends on the inputs and the recorded backward is differentiated.
  const GradcheckReport wide = gradgradcheck([](In in) { return square(affine(in[0], in[1], in[2], in[3], 2)); }, {W, x, b, base});
  CHECK_MESSAGE(wide.ok(), wide.str());
  const GradcheckReport steps = gradgradcheck([](In in) { return square(affine_steps(in[0], {in[1], in[3]}, in[2])); }, {W, x, b, x2});
  CHECK_MESSAGE(steps.ok(), steps.str());
  const GradcheckReport seqr = gradgradcheck([](In in) { return square(affine_seq(in[0], in[1], in[2])); }, {W, seq, b});
  CHECK_MESSAGE(seqr.ok(), seqr.str());
}

TEST_CASE("audit s14: the gradient of a leaf with respect to itself is the seed, and with create_graph too") {
  Tape tape;
  Tensor x = Tensor::from_vector({1.0, 2.0}, {2}, float64).set_requires_grad();
  const Tensor seed = Tensor::from_vector({3.0, -1.0}, {2}, float64);
  CHECK(grad({x}, {x}, {seed})[0].to_vector() == std::vector<double>{3.0, -1.0});
  CHECK(grad({x}, {x}, {seed}, SweepOptions{.create_graph = true})[0].to_vector() == std::vector<double>{3.0, -1.0});
}
