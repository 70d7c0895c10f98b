// Losses (nn/losses.hpp): gradients by central differences in float64, values against references
// computed here with plain C++ math (or by hand, or — where marked — printed by PyTorch 1.13 with the
// snippet quoted next to them), extreme logits, reductions, weights and masks, errors, float32.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <nn/losses.hpp>
#include <rewind.hpp>

using namespace rwd;

namespace {

Tensor f64(const std::vector<double>& v, const Shape& s) { return Tensor::from_vector(v, s, float64); }

/// Values of `got` within atol + rtol·|want| of `want`, element by element, naming the index.
void check_close(const std::vector<double>& got, const std::vector<double>& want, double atol = 1e-12,
                 double rtol = 1e-12) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i)
    CHECK_MESSAGE(std::abs(got[i] - want[i]) <= atol + rtol * std::abs(want[i]),
                  "element " << i << ": got " << got[i] << ", want " << want[i]);
}

void check_close(const Tensor& got, const std::vector<double>& want, double atol = 1e-12, double rtol = 1e-12) {
  check_close(got.to_vector(), want, atol, rtol);
}

void check_finite(const std::vector<double>& v) {
  for (std::size_t i = 0; i < v.size(); ++i) CHECK_MESSAGE(std::isfinite(v[i]), "element " << i << " is " << v[i]);
}

/// d f(x) / dx by the tape, for a scalar f.
std::vector<double> grad_of(const Tensor& x, const std::function<Tensor(const Tensor&)>& f) {
  Tensor p = x.detach();
  p.set_requires_grad();
  f(p).backward();
  return p.grad().to_vector();
}

/// The result of gradcheck, failing the test with its diagnosis.
void check_gradients(const TensorFunction& f, const std::vector<Tensor>& inputs) {
  const GradcheckReport r = gradcheck(f, inputs);
  CHECK_MESSAGE(r.ok(), r.str());
}

// Independent references, plain C++.
double sigmoid_ref(double x) { return 1 / (1 + std::exp(-x)); }

/// Softmax of one column.
std::vector<double> softmax_ref(const std::vector<double>& z) {
  double m = z[0], s = 0;
  for (double v : z) m = std::max(m, v);
  std::vector<double> p(z.size());
  for (std::size_t i = 0; i < z.size(); ++i) s += p[i] = std::exp(z[i] - m);
  for (double& v : p) v /= s;
  return p;
}

/// −log softmax(z)[k].
double ce_ref(const std::vector<double>& z, std::size_t k) { return -std::log(softmax_ref(z)[k]); }

/// A (rows, cols) matrix's column j, row-major storage.
std::vector<double> column(const std::vector<double>& m, std::size_t rows, std::size_t cols, std::size_t j) {
  std::vector<double> c(rows);
  for (std::size_t i = 0; i < rows; ++i) c[i] = m[i * cols + j];
  return c;
}

/// Residuals of magnitude in [lo, hi) with random signs: keeps l1 away from 0 and huber away from δ.
std::vector<double> residuals(std::size_t n, double lo, double hi, Generator& gen) {
  std::vector<double> r(n);
  for (double& v : r) v = (gen.integer(2) ? 1 : -1) * gen.uniform(lo, hi);
  return r;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Regression losses.

TEST_CASE("loss: mse_loss(prediction, target, {reduction, weight}) = (p − t)²") {
  // r = p − t = (−0.5, 0, 1, −2): ℓ = (0.25, 0, 1, 4), Σ = 5.25, mean = 1.3125, ∂mean/∂p = 2r/4.
  const Tensor p = f64({1, 2, 3, 4}, {2, 2}), t = f64({1.5, 2, 2, 6}, {2, 2});
  check_close(mse_loss(p, t, {.reduction = Reduction::none}), {0.25, 0, 1, 4});
  CHECK(mse_loss(p, t, {.reduction = Reduction::sum}).item() == 5.25);
  CHECK(mse_loss(p, t).item() == 1.3125);
  CHECK(mse_loss(p, t).shape() == Shape{});
  check_close(grad_of(p, [&](const Tensor& x) { return mse_loss(x, t); }), {-0.25, 0, 0.5, -1});
  check_close(grad_of(p, [&](const Tensor& x) { return mse_loss(x, t, {.reduction = Reduction::sum}); }),
              {-1, 0, 2, -4});

  Generator gen(11);
  for (const Shape& s : {Shape{5}, Shape{3, 4}, Shape{2, 3, 2}}) {
    CAPTURE(s.str());
    Tensor a = Tensor::randn(s, gen, float64).set_requires_grad().set_name("prediction");
    Tensor b = Tensor::randn(s, gen, float64).set_requires_grad().set_name("target");
    for (Reduction red : {Reduction::mean, Reduction::sum, Reduction::none})
      check_gradients([red](const std::vector<Tensor>& in) { return mse_loss(in[0], in[1], {.reduction = red}); },
                      {a, b});
  }
}

TEST_CASE("loss: l1_loss(prediction, target, {reduction, weight}) = |p − t|") {
  // r = (−0.5, −2, 1): ℓ = (0.5, 2, 1), Σ = 3.5, mean = 7/6, ∂mean/∂p = sign(r)/3.
  const Tensor p = f64({0.5, -1, 2}, {3}), t = f64({1, 1, 1}, {3});
  check_close(l1_loss(p, t, {.reduction = Reduction::none}), {0.5, 2, 1});
  CHECK(l1_loss(p, t, {.reduction = Reduction::sum}).item() == 3.5);
  check_close(l1_loss(p, t), {7.0 / 6.0}, 0, 1e-15);
  check_close(grad_of(p, [&](const Tensor& x) { return l1_loss(x, t); }), {-1.0 / 3, -1.0 / 3, 1.0 / 3}, 0, 1e-15);

  Generator gen(12);
  Tensor a = Tensor::randn({4, 3}, gen, float64);
  Tensor b = a - f64(residuals(12, 0.1, 1.0, gen), {4, 3});  // |p − t| ≥ 0.1: away from the kink
  a.set_requires_grad().set_name("prediction");
  b = b.detach();
  b.set_requires_grad().set_name("target");
  check_gradients([](const std::vector<Tensor>& in) { return l1_loss(in[0], in[1]); }, {a, b});
}

TEST_CASE("loss: huber_loss(prediction, target, delta, {reduction, weight})") {
  SUBCASE("delta = 1: ½r² inside, δ(|r| − ½δ) outside, gradient r or δ·sign(r)") {
    // r = (0.5, 2, −3, −0.2): ℓ = (0.125, 1.5, 2.5, 0.02), ∂Σ/∂p = (0.5, 1, −1, −0.2).
    const Tensor p = f64({0.5, 2, -3, -0.2}, {4}), t = Tensor::zeros({4}, float64);
    check_close(huber_loss(p, t, 1.0, {.reduction = Reduction::none}), {0.125, 1.5, 2.5, 0.02}, 1e-15);
    check_close(huber_loss(p, t, 1.0, {.reduction = Reduction::sum}), {4.145}, 1e-14);
    check_close(huber_loss(p, t), {4.145 / 4}, 1e-14);  // delta defaults to 1, like PyTorch
    check_close(grad_of(p, [&](const Tensor& x) { return huber_loss(x, t, 1.0, {.reduction = Reduction::sum}); }),
                {0.5, 1, -1, -0.2}, 1e-15);
  }
  SUBCASE("delta = 2") {
    // r = (0.5, 2.5, −3): ℓ = (0.125, 2·(2.5 − 1), 2·(3 − 1)) = (0.125, 3, 4), ∂/∂p = (0.5, 2, −2).
    const Tensor p = f64({1.5, 3.5, -2}, {3}), t = f64({1, 1, 1}, {3});
    check_close(huber_loss(p, t, 2.0, {.reduction = Reduction::none}), {0.125, 3, 4}, 1e-15);
    check_close(grad_of(p, [&](const Tensor& x) { return huber_loss(x, t, 2.0, {.reduction = Reduction::sum}); }),
                {0.5, 2, -2}, 1e-15);
  }
  SUBCASE("gradcheck away from |r| = delta, both regimes") {
    Generator gen(13);
    for (double delta : {0.5, 1.0, 2.0}) {
      CAPTURE(delta);
      std::vector<double> r = residuals(6, 0.1, 0.8 * delta, gen);         // inside
      const std::vector<double> out = residuals(6, 1.2 * delta, 3 * delta, gen);  // outside
      r.insert(r.end(), out.begin(), out.end());
      Tensor t = Tensor::randn({3, 4}, gen, float64);
      Tensor p = (t + f64(r, {3, 4})).detach();
      p.set_requires_grad().set_name("prediction");
      t.set_requires_grad().set_name("target");
      check_gradients([delta](const std::vector<Tensor>& in) { return huber_loss(in[0], in[1], delta); }, {p, t});
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Binary cross-entropy.

TEST_CASE("loss: binary_cross_entropy(probabilities, target) — logs clamped at −100") {
  SUBCASE("values and gradient (p − y)/(p(1 − p))") {
    const std::vector<double> pv = {0.8, 0.3, 0.6, 0.5}, yv = {1, 0, 0.25, 1};
    std::vector<double> want(4), dwant(4);
    for (std::size_t i = 0; i < 4; ++i) {
      want[i] = -(yv[i] * std::log(pv[i]) + (1 - yv[i]) * std::log(1 - pv[i]));
      dwant[i] = (pv[i] - yv[i]) / (pv[i] * (1 - pv[i]));
    }
    const Tensor p = f64(pv, {4}), y = f64(yv, {4});
    check_close(binary_cross_entropy(p, y, {.reduction = Reduction::none}), want, 1e-15, 1e-14);
    // PyTorch: F.binary_cross_entropy(p, y, reduction='none')
    check_close(binary_cross_entropy(p, y, {.reduction = Reduction::none}),
                {0.2231435513142097, 0.35667494393873245, 0.814924454847114, 0.6931471805599453}, 1e-15, 1e-14);
    check_close(grad_of(p, [&](const Tensor& x) { return binary_cross_entropy(x, y, {.reduction = Reduction::sum}); }),
                dwant, 1e-14, 1e-13);
  }
  SUBCASE("p = 0 or 1: losses at most 100, finite gradients (0 from a clamped term)") {
    // ℓ(0 | y=1) = ℓ(1 | y=0) = 100 (PyTorch's clamp), ℓ(0 | 0) = ℓ(1 | 1) = 0.
    // ∂ℓ/∂p: clamped terms give 0; −log(1 − p) at p = 0 gives 1; −log p at p = 1 gives −1.
    for (Dtype dt : {float64, float32}) {
      const std::string dtype = dtype_name(dt);
      CAPTURE(dtype);
      const Tensor p = Tensor::from_vector(std::vector<double>{0, 1, 0, 1}, {4}, dt);
      const Tensor y = Tensor::from_vector(std::vector<double>{1, 0, 0, 1}, {4}, dt);
      check_close(binary_cross_entropy(p, y, {.reduction = Reduction::none}), {100, 100, 0, 0}, 0, 1e-6);
      const std::vector<double> g =
          grad_of(p, [&](const Tensor& x) { return binary_cross_entropy(x, y, {.reduction = Reduction::sum}); });
      check_finite(g);
      check_close(g, {0, 0, 1, -1});
    }
  }
  SUBCASE("the clamp binds only below log p = −100") {
    const Tensor p = f64({1e-30, 1e-50}, {2}), y = f64({1, 1}, {2});
    check_close(binary_cross_entropy(p, y, {.reduction = Reduction::none}), {30 * std::log(10.0), 100}, 0, 1e-15);
    check_close(grad_of(p, [&](const Tensor& x) { return binary_cross_entropy(x, y, {.reduction = Reduction::sum}); }),
                {-1e30, 0}, 0, 1e-15);
  }
  SUBCASE("gradcheck in p and y") {
    Generator gen(21);
    Tensor p = Tensor::uniform({3, 4}, 0.05, 0.95, gen, float64).set_requires_grad().set_name("probabilities");
    Tensor y = Tensor::uniform({3, 4}, 0, 1, gen, float64).set_requires_grad().set_name("target");
    check_gradients([](const std::vector<Tensor>& in) { return binary_cross_entropy(in[0], in[1]); }, {p, y});
  }
  SUBCASE("probabilities outside [0, 1] are refused") {
    const Tensor y = f64({1, 0}, {2});
    CHECK_THROWS_AS(binary_cross_entropy(f64({0.5, 1.5}, {2}), y), ValueError);
    CHECK_THROWS_AS(binary_cross_entropy(f64({-0.1, 0.5}, {2}), y), ValueError);
    CHECK_THROWS_AS(binary_cross_entropy(f64({NAN, 0.5}, {2}), y), ValueError);
    CHECK_THROWS_WITH(binary_cross_entropy(f64({0.5, 1.5}, {2}), y),
                      doctest::Contains("binary_cross_entropy: probability 1.5"));
  }
}

TEST_CASE("loss: binary_cross_entropy_with_logits(logits, target) — stable for any |x|") {
  SUBCASE("values and gradient σ(x) − y, including x = 0") {
    const std::vector<double> xv = {0.5, -1.5, 2, 0, 0}, yv = {1, 0, 0.3, 0, 1};
    std::vector<double> want(5), dwant(5);
    for (std::size_t i = 0; i < 5; ++i) {
      const double s = sigmoid_ref(xv[i]);
      want[i] = -(yv[i] * std::log(s) + (1 - yv[i]) * std::log(1 - s));
      dwant[i] = s - yv[i];
    }
    const Tensor x = f64(xv, {5}), y = f64(yv, {5});
    check_close(binary_cross_entropy_with_logits(x, y, {.reduction = Reduction::none}), want, 1e-15, 1e-14);
    // At x = 0 exactly (zero-initialized logits) the gradient is σ(0) − y = ±½, not a one-sided slope.
    check_close(
        grad_of(x, [&](const Tensor& z) { return binary_cross_entropy_with_logits(z, y, {.reduction = Reduction::sum}); }),
        dwant, 1e-15, 1e-14);
    // Through softplus: its slope at 0 is σ(0) = ½ (and log_sigmoid's is σ(−0) = ½).
    check_close(grad_of(f64({0}, {1}), [](const Tensor& z) { return sum(softplus(z)); }), {0.5});
    check_close(grad_of(f64({0}, {1}), [](const Tensor& z) { return sum(log_sigmoid(z)); }), {0.5});
    // The same as binary_cross_entropy on σ(x) where that one is accurate.
    check_close(binary_cross_entropy_with_logits(x, y), {binary_cross_entropy(sigmoid(x), y).item()}, 0, 1e-14);
  }
  SUBCASE("logits ±100 and ±1000: finite, and the analytic limits") {
    // ℓ → max(x, 0) − x·y: x = 100, y = 0 → 100; x = −100, y = 1 → 100; the right answers → 0.
    // ∂ℓ/∂x = σ(x) − y → 1, −1, 0, 0. PyTorch prints the same losses, and 3.7200759760208356e-44
    // (= e^−100) for the gradient at x = −100, y = 0:
    //   F.binary_cross_entropy_with_logits(x, y, reduction='none'), then .sum().backward()
    const std::vector<double> xv = {100, -100, 100, -100, 1000, -1000, 1000, -1000};
    const std::vector<double> yv = {0, 1, 1, 0, 0, 1, 1, 0};
    for (Dtype dt : {float64, float32}) {
      const std::string dtype = dtype_name(dt);
      CAPTURE(dtype);
      const Tensor x = Tensor::from_vector(xv, {8}, dt), y = Tensor::from_vector(yv, {8}, dt);
      const Tensor l = binary_cross_entropy_with_logits(x, y, {.reduction = Reduction::none});
      check_finite(l.to_vector());
      check_close(l, {100, 100, 0, 0, 1000, 1000, 0, 0}, 1e-30, 1e-7);
      const std::vector<double> g = grad_of(
          x, [&](const Tensor& z) { return binary_cross_entropy_with_logits(z, y, {.reduction = Reduction::sum}); });
      check_finite(g);
      check_close(g, {1, -1, 0, std::exp(-100.0), 1, -1, 0, 0}, 1e-30, 1e-6);
      // ∂ℓ/∂y = −x.
      check_close(grad_of(y, [&](const Tensor& t) {
                    return binary_cross_entropy_with_logits(x, t, {.reduction = Reduction::sum});
                  }),
                  {-100, 100, -100, 100, -1000, 1000, -1000, 1000});
    }
  }
  SUBCASE("gradcheck in x and y") {
    Generator gen(22);
    Tensor x = (3.0 * Tensor::randn({4, 3}, gen, float64)).detach();
    x.set_requires_grad().set_name("logits");
    Tensor y = Tensor::uniform({4, 3}, 0, 1, gen, float64).set_requires_grad().set_name("target");
    for (Reduction red : {Reduction::mean, Reduction::sum, Reduction::none})
      check_gradients(
          [red](const std::vector<Tensor>& in) {
            return binary_cross_entropy_with_logits(in[0], in[1], {.reduction = red});
          },
          {x, y});
  }
}

// ---------------------------------------------------------------------------------------------
// Classification losses. Logits are (classes, batch): one column per example.

TEST_CASE("loss: cross_entropy(logits, labels, {axis, reduction, weight, ignore_index, class_weight})") {
  // (3 classes, 4 examples); column j holds example j's logits.
  const std::vector<double> lv = {1, 0.5, -2, 0,  //
                                  2, -1, 0.5, 1.5,  //
                                  3, 0, 1, -0.5};
  const Indices labels = {2, 0, 0, 1};
  std::vector<double> want(4), dwant(12);
  for (std::size_t j = 0; j < 4; ++j) {
    const std::vector<double> z = column(lv, 3, 4, j);
    want[j] = ce_ref(z, static_cast<std::size_t>(labels[j]));
    const std::vector<double> s = softmax_ref(z);
    for (std::size_t c = 0; c < 3; ++c) dwant[c * 4 + j] = (s[c] - (c == static_cast<std::size_t>(labels[j]))) / 4;
  }
  const Tensor logits = f64(lv, {3, 4});

  SUBCASE("values, mean/sum/none, gradient (softmax − onehot)/n") {
    CHECK(want[0] == doctest::Approx(std::log(1 + std::exp(-1.0) + std::exp(-2.0))));  // by hand: column 0
    check_close(cross_entropy(logits, labels, {.reduction = Reduction::none}), want, 1e-15, 1e-14);
    check_close(cross_entropy(logits, labels, {.reduction = Reduction::sum}), {want[0] + want[1] + want[2] + want[3]},
                0, 1e-14);
    check_close(cross_entropy(logits, labels), {(want[0] + want[1] + want[2] + want[3]) / 4}, 0, 1e-14);
    check_close(grad_of(logits, [&](const Tensor& x) { return cross_entropy(x, labels); }), dwant, 1e-15, 1e-13);
  }
  SUBCASE("the class axis: (batch, classes) with axis = 1 or −1 gives the same") {
    const Tensor lt = transpose(logits);
    check_close(cross_entropy(lt, labels, {.reduction = Reduction::none, .axis = 1}), want, 1e-15, 1e-14);
    check_close(cross_entropy(lt, labels, {.reduction = Reduction::none, .axis = -1}), want, 1e-15, 1e-14);
  }
  SUBCASE("a sequence: (classes, time, batch) logits with axis 0, labels row-major over (time, batch)") {
    // Reuse the 4 columns as (time 2, batch 2): column j is (t, b) = (j / 2, j % 2). (A 3-D tensor's
    // default class axis is 1, of (time, classes, batch): this layout names its axis.)
    const Tensor seq = reshape(logits, {3, 2, 2});
    const Tensor l = cross_entropy(seq, labels, {.reduction = Reduction::none, .axis = 0});
    CHECK(l.shape() == Shape{2, 2});
    check_close(l, want, 1e-15, 1e-14);
  }
  SUBCASE("one example: (classes,) logits and one label") {
    check_close(cross_entropy(f64({1, 2, 3}, {3}), Indices{2}), {want[0]}, 0, 1e-14);
  }
  SUBCASE("ignore_index and class_weight, as PyTorch") {
    // PyTorch 1.13: F.cross_entropy(L.t(), torch.tensor([2, -100, 0, 1]), weight=torch.tensor([0.5, 2.0, 1.5]),
    //                               ignore_index=-100, reduction=red)  (L the (3, 4) logits above, float64)
    const Indices ignored = {2, -100, 0, 1};
    const Tensor cw = f64({0.5, 2.0, 1.5}, {3});
    ClassLossOptions o{.ignore_index = -100, .class_weight = cw};
    o.reduction = Reduction::none;
    check_close(cross_entropy(logits, ignored, o), {0.6114089466665706, 0.0, 1.7522984511711417, 0.6127114244582933},
                1e-15, 1e-14);
    o.reduction = Reduction::sum;
    check_close(cross_entropy(logits, ignored, o), {2.9764188222960053}, 0, 1e-14);
    o.reduction = Reduction::mean;  // Σ w_y ℓ / Σ w_y over the kept examples: / (1.5 + 0.5 + 2)
    check_close(cross_entropy(logits, ignored, o), {0.7441047055740013}, 0, 1e-14);
    check_close(grad_of(logits, [&](const Tensor& x) { return cross_entropy(x, ignored, o); }),
                {0.03376146493889266, 0.0, -0.12124263905380325, 0.0821258138125439,  //
                 0.09177317664554911, 0.0, 0.045774027035225026, -0.1319376378437031,  //
                 -0.12553464158444183, 0.0, 0.07546861201857823, 0.04981182403115915},
                1e-15, 1e-12);
    // And by hand from the references above: ℓ = (1.5·want0, 0, 0.5·want2, 2·want3).
    check_close(cross_entropy(logits, ignored, o), {(1.5 * want[0] + 0.5 * want[2] + 2 * want[3]) / 4}, 0, 1e-14);
    // Everything ignored: the mean is 0 (not NaN), with a zero gradient.
    const Indices none_kept = {-100, -100, -100, -100};
    CHECK(cross_entropy(logits, none_kept, {.ignore_index = -100}).item() == 0);
    check_close(grad_of(logits, [&](const Tensor& x) { return cross_entropy(x, none_kept, {.ignore_index = -100}); }),
                std::vector<double>(12, 0.0));
  }
  SUBCASE("logits ±100 and ±1000: finite, and the analytic limits") {
    // Column 0 (1000, −1000, 0), label 1: ℓ = 2000, ∂ℓ/∂x = softmax − onehot = (1, −1, 0).
    // Column 1 (100, 0, −100), label 0: ℓ = log(1 + e^−100 + e^−200) ≈ 0, gradient ≈ 0.
    // Column 2 (−1000, 1000, 1000), label 0: ℓ = 2000 + log 2, gradient (−1, ½, ½).
    for (Dtype dt : {float64, float32}) {
      const std::string dtype = dtype_name(dt);
      CAPTURE(dtype);
      const Tensor x = Tensor::from_vector(std::vector<double>{1000, 100, -1000,  //
                                                               -1000, 0, 1000,    //
                                                               0, -100, 1000},
                                           {3, 3}, dt);
      const Indices y = {1, 0, 0};
      const Tensor l = cross_entropy(x, y, {.reduction = Reduction::none});
      check_finite(l.to_vector());
      check_close(l, {2000, 0, 2000 + std::log(2.0)}, 1e-30, 1e-6);
      const std::vector<double> g =
          grad_of(x, [&](const Tensor& z) { return cross_entropy(z, y, {.reduction = Reduction::sum}); });
      check_finite(g);
      check_close(g, {1, 0, -1, -1, 0, 0.5, 0, 0, 0.5}, 1e-30, 1e-6);
    }
  }
  SUBCASE("gradcheck: shapes, axes, reductions, weights") {
    Generator gen(31);
    Tensor x = Tensor::randn({5, 3}, gen, float64).set_requires_grad().set_name("logits");
    const Indices y = {4, 0, 2};
    for (Reduction red : {Reduction::mean, Reduction::sum, Reduction::none})
      check_gradients([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], y, {.reduction = red}); }, {x});
    Tensor x3 = Tensor::randn({2, 4, 3}, gen, float64).set_requires_grad().set_name("logits");
    const Indices y3 = {0, 3, 1, 2, 2, 0};  // axis 1: examples are (2, 3)
    check_gradients([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], y3, {.axis = 1}); }, {x3});
    Tensor cw = Tensor::uniform({5}, 0.5, 2, gen, float64).set_requires_grad().set_name("class_weight");
    Tensor w = Tensor::uniform({3}, 0.5, 2, gen, float64).set_requires_grad().set_name("weight");
    check_gradients(
        [&](const std::vector<Tensor>& in) {
          return cross_entropy(in[0], Indices{4, -1, 2}, {.weight = in[2], .ignore_index = -1, .class_weight = in[1]});
        },
        {x, cw, w});
  }
}

TEST_CASE("loss: cross_entropy(logits, target probabilities) — one-hot or soft targets") {
  const std::vector<double> lv = {1, 0.5, -2,  //
                                  2, -1, 0.5,  //
                                  3, 0, 1};
  const Tensor logits = f64(lv, {3, 3});
  SUBCASE("one-hot targets equal the class-index form") {
    const Indices y = {2, 0, 1};
    const Tensor t = one_hot(y, 3, float64);
    check_close(t, {0, 1, 0, 0, 0, 1, 1, 0, 0});
    check_close(cross_entropy(logits, t, {.reduction = Reduction::none}),
                cross_entropy(logits, y, {.reduction = Reduction::none}).to_vector(), 1e-15, 1e-14);
    check_close(grad_of(logits, [&](const Tensor& x) { return cross_entropy(x, t); }),
                grad_of(logits, [&](const Tensor& x) { return cross_entropy(x, y); }), 1e-15, 1e-13);
  }
  SUBCASE("soft targets: ℓ = −Σ y log softmax, gradient softmax·Σy − y") {
    const std::vector<double> tv = {0.2, 0.0, 0.5,  //
                                    0.3, 1.0, 0.25,  //
                                    0.5, 0.0, 0.25};
    std::vector<double> want(3, 0.0), dwant(9);
    for (std::size_t j = 0; j < 3; ++j) {
      const std::vector<double> z = column(lv, 3, 3, j), y = column(tv, 3, 3, j), s = softmax_ref(z);
      for (std::size_t c = 0; c < 3; ++c) {
        want[j] -= y[c] * std::log(s[c]);
        dwant[c * 3 + j] = s[c] - y[c];  // Σ_c y = 1 per column
      }
    }
    const Tensor t = f64(tv, {3, 3});
    check_close(cross_entropy(logits, t, {.reduction = Reduction::none}), want, 1e-15, 1e-14);
    check_close(grad_of(logits, [&](const Tensor& x) { return cross_entropy(x, t, {.reduction = Reduction::sum}); }),
                dwant, 1e-15, 1e-13);
    // class_weight scales each class's term; the mean still divides by the example count (PyTorch).
    const Tensor cw = f64({0.5, 2, 1}, {3});
    double weighted = 0;
    for (std::size_t j = 0; j < 3; ++j) {
      const std::vector<double> s = softmax_ref(column(lv, 3, 3, j)), y = column(tv, 3, 3, j);
      for (std::size_t c = 0; c < 3; ++c) weighted -= cw.to_vector()[c] * y[c] * std::log(s[c]);
    }
    check_close(cross_entropy(logits, t, {.class_weight = cw}), {weighted / 3}, 0, 1e-14);
  }
  SUBCASE("logits ±1000: finite") {
    const Tensor x = f64({1000, 0, -1000, 0}, {2, 2});  // columns (1000, −1000) and (0, 0)
    const Tensor t = f64({0, 0.5, 1, 0.5}, {2, 2});
    check_close(cross_entropy(x, t, {.reduction = Reduction::none}), {2000, std::log(2.0)}, 0, 1e-15);
    const std::vector<double> g = grad_of(x, [&](const Tensor& z) { return cross_entropy(z, t, {.reduction = Reduction::sum}); });
    check_finite(g);
    check_close(g, {1, 0, -1, 0}, 1e-15);
  }
  SUBCASE("gradcheck in logits and targets, axis 0 and 1") {
    Generator gen(32);
    Tensor x = Tensor::randn({4, 3}, gen, float64).set_requires_grad().set_name("logits");
    Tensor t = Tensor::uniform({4, 3}, 0, 1, gen, float64).set_requires_grad().set_name("target");
    check_gradients([](const std::vector<Tensor>& in) { return cross_entropy(in[0], in[1]); }, {x, t});
    check_gradients([](const std::vector<Tensor>& in) { return cross_entropy(in[0], in[1], {.axis = 1}); }, {x, t});
  }
}

TEST_CASE("loss: nll_loss(log_probs, labels, {…}) = −log_probs[label]") {
  // Probabilities by hand, columns summing to 1: (0.7, 0.2, 0.1) and (0.25, 0.25, 0.5).
  const Tensor lp = log(f64({0.7, 0.25, 0.2, 0.25, 0.1, 0.5}, {3, 2}));
  const Indices y = {0, 2};
  check_close(nll_loss(lp, y, {.reduction = Reduction::none}), {-std::log(0.7), -std::log(0.5)}, 0, 1e-15);
  check_close(nll_loss(lp, y), {-(std::log(0.7) + std::log(0.5)) / 2}, 0, 1e-15);
  // ∂mean/∂log_probs: −1/n at each picked entry, 0 elsewhere.
  check_close(grad_of(lp, [&](const Tensor& x) { return nll_loss(x, y); }), {-0.5, 0, 0, 0, 0, -0.5});
  // cross_entropy is nll_loss after log_softmax.
  Generator gen(33);
  const Tensor x = Tensor::randn({4, 5}, gen, float64);
  const Indices y5 = {3, 0, 1, 3, 2};
  check_close(nll_loss(log_softmax(x, 0), y5), {cross_entropy(x, y5).item()}, 0, 1e-15);
  Tensor xg = x.detach();
  xg.set_requires_grad().set_name("log_probs");
  check_gradients([&](const std::vector<Tensor>& in) { return nll_loss(in[0], y5, {.reduction = Reduction::sum}); },
                  {xg});
}

// ---------------------------------------------------------------------------------------------
// Reductions, weights and masks.

TEST_CASE("loss: weights and masks — the mean divides by the total weight") {
  SUBCASE("a (1, B) column mask over a (F, B) loss counts F per kept column") {
    // r² = (1, 4, 9 | 16, 25, 36) for (F=2, B=3); mask keeps columns 0 and 2:
    // Σ w ℓ = 1 + 9 + 16 + 36 = 62, Σ w (broadcast) = 4, mean = 15.5.
    const Tensor p = f64({1, 2, 3, 4, 5, 6}, {2, 3}), t = Tensor::zeros({2, 3}, float64);
    const Tensor mask = f64({1, 0, 1}, {1, 3});
    check_close(mse_loss(p, t, {.weight = mask}), {15.5});
    check_close(mse_loss(p, t, {.reduction = Reduction::sum, .weight = mask}), {62});
    check_close(mse_loss(p, t, {.reduction = Reduction::none, .weight = mask}), {1, 0, 9, 16, 0, 36});
    // ∂mean/∂p = 2·p·w / 4.
    check_close(grad_of(p, [&](const Tensor& x) { return mse_loss(x, t, {.weight = mask}); }), {0.5, 0, 1.5, 2, 0, 3});
    // The same as the plain mean over the kept columns alone.
    const Tensor kept = f64({1, 3, 4, 6}, {2, 2});
    check_close(mse_loss(p, t, {.weight = mask}), {mse_loss(kept, Tensor::zeros({2, 2}, float64)).item()});
  }
  SUBCASE("fractional weights: Σ w ℓ / Σ w") {
    // ℓ = |r| = (1, 2, 3), w = (0.5, 1, 2): (0.5 + 2 + 6) / 3.5.
    const Tensor p = f64({1, -2, 3}, {3}), t = Tensor::zeros({3}, float64), w = f64({0.5, 1, 2}, {3});
    check_close(l1_loss(p, t, {.weight = w}), {8.5 / 3.5}, 0, 1e-15);
    check_close(reduce_loss(f64({1, 2, 3}, {3}), Reduction::mean, w), {8.5 / 3.5}, 0, 1e-15);
    check_close(reduce_loss(f64({1, 2, 3}, {3}), Reduction::sum, w), {8.5});
  }
  SUBCASE("padded sequences: (C, T, B) logits (axis 0), a (T, B) mask, mean over the real steps") {
    // Batch of 2 sequences of lengths 3 and 1, padded to T = 3.
    Generator gen(41);
    const Tensor x = Tensor::randn({4, 3, 2}, gen, float64);
    const Indices y = {1, 3, 0, 0, 2, 0};  // padded positions carry label 0: they must not count
    const Tensor mask = f64({1, 1, 1, 0, 1, 0}, {3, 2});
    double total = 0;
    const std::vector<double> xv = x.to_vector();
    for (std::size_t k : {0, 1, 2, 4}) {  // (t, b) = k / 2, k % 2
      std::vector<double> z(4);
      for (std::size_t c = 0; c < 4; ++c) z[c] = xv[c * 6 + k];
      total += ce_ref(z, static_cast<std::size_t>(y[k]));
    }
    check_close(cross_entropy(x, y, {.weight = mask, .axis = 0}), {total / 4}, 0, 1e-14);
    check_close(cross_entropy(x, y, {.reduction = Reduction::sum, .weight = mask, .axis = 0}), {total}, 0, 1e-14);
    // The padded positions get no gradient.
    const std::vector<double> g = grad_of(x, [&](const Tensor& z) { return cross_entropy(z, y, {.weight = mask, .axis = 0}); });
    for (std::size_t c = 0; c < 4; ++c) {
      CHECK(g[c * 6 + 3] == 0);
      CHECK(g[c * 6 + 5] == 0);
    }
    // The same via ignore_index on the padded labels.
    const Indices yi = {1, 3, 0, -1, 2, -1};
    check_close(cross_entropy(x, yi, {.axis = 0, .ignore_index = -1}), {total / 4}, 0, 1e-14);
  }
  SUBCASE("an all-padding batch: the mean is 0, not NaN") {
    const Tensor p = f64({1, 2}, {2}), t = Tensor::zeros({2}, float64), mask = Tensor::zeros({2}, float64);
    CHECK(mse_loss(p, t, {.weight = mask}).item() == 0);
    check_close(grad_of(p, [&](const Tensor& x) { return mse_loss(x, t, {.weight = mask}); }), {0, 0});
  }
  SUBCASE("gradcheck in the weights (through the Σ w denominator) and the predictions") {
    Generator gen(42);
    Tensor p = Tensor::randn({3, 4}, gen, float64).set_requires_grad().set_name("prediction");
    const Tensor t = Tensor::randn({3, 4}, gen, float64);
    Tensor w = Tensor::uniform({1, 4}, 0.2, 2, gen, float64).set_requires_grad().set_name("weight");
    for (Reduction red : {Reduction::mean, Reduction::sum, Reduction::none})
      check_gradients(
          [&, red](const std::vector<Tensor>& in) { return mse_loss(in[0], t, {.reduction = red, .weight = in[1]}); },
          {p, w});
    Tensor x = Tensor::randn({3, 4}, gen, float64).set_requires_grad().set_name("logits");
    Tensor y = Tensor::uniform({3, 4}, 0, 1, gen, float64);
    Tensor w2 = Tensor::uniform({3, 1}, 0.2, 2, gen, float64).set_requires_grad().set_name("weight");
    check_gradients(
        [&](const std::vector<Tensor>& in) { return binary_cross_entropy_with_logits(in[0], y, {.weight = in[1]}); },
        {x, w2});
  }
}

TEST_CASE("loss: errors name the loss and both shapes") {
  const Tensor a = Tensor::zeros({2, 3}, float64), b = Tensor::zeros({3, 2}, float64);
  CHECK_THROWS_AS(mse_loss(a, b), ShapeError);
  CHECK_THROWS_WITH(mse_loss(a, b), "mse_loss: prediction (2, 3) and target (3, 2): the target must have the "
                                    "prediction's shape");
  CHECK_THROWS_WITH(l1_loss(a, b), doctest::Contains("l1_loss: prediction (2, 3) and target (3, 2)"));
  CHECK_THROWS_WITH(huber_loss(a, b), doctest::Contains("huber_loss: prediction (2, 3) and target (3, 2)"));
  CHECK_THROWS_WITH(binary_cross_entropy(a, b), doctest::Contains("binary_cross_entropy: probabilities (2, 3)"));
  CHECK_THROWS_WITH(binary_cross_entropy_with_logits(a, Tensor::zeros({2, 1}, float64)),
                    doctest::Contains("binary_cross_entropy_with_logits: logits (2, 3) and target (2, 1)"));
  CHECK_THROWS_WITH(cross_entropy(a, b), doctest::Contains("cross_entropy: logits (2, 3) and target (3, 2)"));

  // Labels: one per example.
  const Tensor x = Tensor::zeros({4, 2}, float64);
  CHECK_THROWS_AS(cross_entropy(x, Indices{0, 1, 2}), ShapeError);
  CHECK_THROWS_WITH(cross_entropy(x, Indices{0, 1, 2}),
                    doctest::Contains("cross_entropy: logits (4, 2) and labels (3,): expected one label per example: "
                                      "2 labels"));
  CHECK_THROWS_WITH(nll_loss(x, Indices{0}), doctest::Contains("nll_loss: log_probs (4, 2) and labels (1,)"));
  CHECK_THROWS_AS(cross_entropy(x, Indices{0, 4}), ValueError);
  CHECK_THROWS_WITH(cross_entropy(x, Indices{0, 4}),
                    doctest::Contains("cross_entropy: label 4 at position 1 is out of range [0, 4)"));
  CHECK_THROWS_WITH(nll_loss(x, Indices{-1, 0}), doctest::Contains("nll_loss: label -1 at position 0"));
  CHECK_THROWS_AS(cross_entropy(x, Indices{0, -100}, {.ignore_index = -1}), ValueError);
  CHECK_THROWS_AS(cross_entropy(x, Indices{0, 1}, {.axis = 2}), ShapeError);
  CHECK_THROWS_AS(cross_entropy(x, Tensor::zeros({4, 2}, float64), {.ignore_index = 0}), ValueError);
  CHECK_THROWS_AS(one_hot(Indices{0, 3}, 3), ValueError);

  // Weights must broadcast to the per-element loss (never enlarge it).
  CHECK_THROWS_WITH(mse_loss(a, a, {.weight = Tensor::ones({3, 1}, float64)}),
                    "mse_loss: weight (3, 1) and per-element loss (2, 3): the weight must broadcast to the "
                    "per-element loss's shape");
  CHECK_THROWS_AS(mse_loss(a, a, {.weight = Tensor::ones({1, 2, 3}, float64)}), ShapeError);
  CHECK_THROWS_WITH(cross_entropy(x, Indices{0, 1}, {.weight = Tensor::ones({4}, float64)}),
                    doctest::Contains("cross_entropy: weight (4,) and per-example loss (2,)"));
  CHECK_THROWS_WITH(cross_entropy(x, Indices{0, 1}, {.class_weight = Tensor::ones({2}, float64)}),
                    doctest::Contains("cross_entropy: logits (4, 2) and class_weight (2,): class_weight must be "
                                      "(classes,) = (4,)"));
  CHECK_THROWS_AS(reduce_loss(a, Reduction::mean, Tensor::ones({2}, float64)), ShapeError);

  // Dtypes must agree; delta must be positive.
  CHECK_THROWS_AS(mse_loss(a, Tensor::zeros({2, 3}, float32)), DtypeError);
  CHECK_THROWS_WITH(mse_loss(a, Tensor::zeros({2, 3}, float32)),
                    doctest::Contains("mse_loss: prediction is float64 but target is float32"));
  CHECK_THROWS_AS(mse_loss(a, a, {.weight = Tensor::ones({3}, float32)}), DtypeError);
  CHECK_THROWS_AS(huber_loss(a, a, 0.0), ValueError);
}

// ---------------------------------------------------------------------------------------------
// float32 against float64, and second order.

TEST_CASE("loss: float32 matches float64 (values and gradients)") {
  Generator gen(51);
  const Tensor p = Tensor::randn({4, 6}, gen, float64);
  const Tensor t = (p + f64(residuals(24, 0.1, 2, gen), {4, 6})).detach();  // away from l1/huber kinks
  const Tensor prob = Tensor::uniform({4, 6}, 0.05, 0.95, gen, float64);
  const Tensor soft = Tensor::uniform({4, 6}, 0, 1, gen, float64);
  const Tensor w = Tensor::uniform({1, 6}, 0, 1, gen, float64);
  const Indices y = {3, 0, 1, 2, 2, 0};
  const Tensor logits = (5.0 * p).detach();

  using Loss = std::function<Tensor(const Tensor& x, const Tensor& t, const Tensor& w)>;
  struct Row {
    const char* name;
    Loss f;
    Tensor x, t;
  };
  const std::vector<Row> rows = {
      {"mse_loss", [](const Tensor& x, const Tensor& t, const Tensor& w) { return mse_loss(x, t, {.weight = w}); }, p, t},
      {"l1_loss", [](const Tensor& x, const Tensor& t, const Tensor& w) { return l1_loss(x, t, {.weight = w}); }, p, t},
      {"huber_loss", [](const Tensor& x, const Tensor& t, const Tensor& w) { return huber_loss(x, t, 1.0, {.weight = w}); },
       p, t},
      {"binary_cross_entropy",
       [](const Tensor& x, const Tensor& t, const Tensor& w) { return binary_cross_entropy(x, t, {.weight = w}); }, prob,
       soft},
      {"binary_cross_entropy_with_logits",
       [](const Tensor& x, const Tensor& t, const Tensor& w) {
         return binary_cross_entropy_with_logits(x, t, {.weight = w});
       },
       logits, soft},
      {"cross_entropy (labels)",
       [&](const Tensor& x, const Tensor&, const Tensor& w) { return cross_entropy(x, y, {.weight = reshape(w, {6})}); },
       logits, soft},
      {"cross_entropy (probabilities)",
       [](const Tensor& x, const Tensor& t, const Tensor& w) { return cross_entropy(x, t, {.weight = reshape(w, {6})}); },
       logits, soft},
      {"nll_loss",
       [&](const Tensor& x, const Tensor&, const Tensor& w) {
         return nll_loss(log_softmax(x, 0), y, {.weight = reshape(w, {6})});
       },
       logits, soft},
  };
  for (const Row& r : rows) {
    CAPTURE(r.name);
    const double v64 = r.f(r.x, r.t, w).item();
    const std::vector<double> g64 = grad_of(r.x, [&](const Tensor& x) { return r.f(x, r.t, w); });
    const Tensor t32 = r.t.to(float32), w32 = w.to(float32);
    const Tensor out32 = r.f(r.x.to(float32), t32, w32);
    CHECK(out32.dtype() == float32);
    check_close({out32.item()}, {v64}, 1e-6, 1e-5);
    const std::vector<double> g32 = grad_of(r.x.to(float32), [&](const Tensor& x) { return r.f(x, t32, w32); });
    check_close(g32, g64, 1e-6, 1e-4);
  }
}

TEST_CASE("loss: second order through the compositions (gradgradcheck)") {
  Generator gen(61);
  Tensor x = Tensor::randn({3, 4}, gen, float64).set_requires_grad().set_name("logits");
  const Tensor y = Tensor::uniform({3, 4}, 0, 1, gen, float64);
  const Indices labels = {2, 0, 1, 1};
  GradcheckReport r = gradgradcheck([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], labels); }, {x});
  CHECK_MESSAGE(r.ok(), r.str());
  r = gradgradcheck([&](const std::vector<Tensor>& in) { return binary_cross_entropy_with_logits(in[0], y); }, {x});
  CHECK_MESSAGE(r.ok(), r.str());
}
