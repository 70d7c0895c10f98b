// Non-finite gradients: a finite loss whose gradient is NaN or ±inf must stop fit() and
// train_truncated() before the step, naming the parameter and the element, with the weights and the
// optimizer's state untouched; an optimizer's own step() keeps PyTorch's semantics (it applies them).
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include <rewind.hpp>

#include "support.hpp"

using namespace rwd;

namespace {

// A Dense(2 => 3) and a parameter s (2, 2) that only the poisoned loss uses: loss + sum(sqrt(s)) is
// finite (s ≥ 0), but d sqrt(u)/du = 1/(2 sqrt(u)) is +inf at s[1, 0] = 0. A clean loss leaves s
// without a gradient, so no optimizer moves it.
struct Model {
  Dense dense{2, 3};
  Tensor s = Tensor::from_vector(std::vector<double>{1, 2, 0, 4}, {2, 2}).set_requires_grad().set_name("s");
  Tensor x = Tensor::from_vector(std::vector<double>{0.5, -1.0, 2.0, 0.25}, {2, 2});
  Tensor y = Tensor::from_vector(std::vector<double>{1, 0, 0.5, 0.2, -0.3, 0.7}, {3, 2});
  std::vector<Tensor> params() {
    std::vector<Tensor> p = dense.parameters();
    p.push_back(s);
    return p;
  }
  Tensor loss(bool poisoned) {
    Tensor l = mse_loss(dense(x), y);
    return poisoned ? l + sum(sqrt(s)) : l;
  }
};

std::vector<std::vector<double>> values(const std::vector<Tensor>& ts) {
  std::vector<std::vector<double>> out;
  for (const Tensor& t : ts) out.push_back(t.to_vector());
  return out;
}

}  // namespace

TEST_CASE("fit: a finite loss with a non-finite gradient stops before the step, naming the parameter and element") {
  for (double clip : {0.0, 1.0}) {
    CAPTURE(clip);
    Model m;
    Adam opt(m.params(), {.lr = 0.1});
    // Batch 1 is clean (the optimizer steps once and has state), batch 2 is poisoned.
    const std::string msg = message_of<NonFiniteGradError>([&] {
      fit(opt, 2, [&](std::size_t, std::size_t b) { return m.loss(b == 1); }, {.epochs = 1, .clip_norm = clip});
    });
    CHECK(contains(msg, "fit: epoch 1, batch 2: the gradient of parameter 2 's' (2, 2) is inf at [1, 0]"));
    CHECK(contains(msg, "no parameter was updated"));
    // The weights are the ones after step 1 only: finite, and the optimizer stepped once.
    for (const Tensor& p : m.params())
      for (double v : p.to_vector()) CHECK(std::isfinite(v));
    CHECK(opt.step_count() == 1);
    for (const auto& [key, t] : opt.state_dict())
      for (double v : t.to_vector()) CHECK_MESSAGE(std::isfinite(v), key);
  }
}

TEST_CASE("fit: with clipping the weights after a refused step equal those of the last clean step, bit for bit") {
  Model a, b;
  for (std::size_t i = 0; i < a.params().size(); ++i) b.params()[i].assign(a.params()[i]);  // the same start
  Adam oa(a.params(), {.lr = 0.1}), ob(b.params(), {.lr = 0.1});
  fit(oa, 1, [&](std::size_t, std::size_t) { return a.loss(false); }, {.clip_norm = 0.5});
  CHECK_THROWS_AS(fit(ob, 2, [&](std::size_t, std::size_t k) { return b.loss(k == 1); }, {.clip_norm = 0.5}),
                  NonFiniteGradError);
  CHECK(values(a.params()) == values(b.params()));
  // and the gradients were not scaled by clip_grad_norm's NaN/0 factor before the refusal
  CHECK(std::isinf(b.s.grad().to_vector()[2]));
}

TEST_CASE("train_truncated: a non-finite gradient stops before the update, naming the window") {
  Model m;
  SGD opt(m.params(), {.lr = 0.1});
  const auto before = values(m.params());
  const std::string msg = message_of<NonFiniteGradError>([&] {
    train_truncated(m.dense, opt, 6, [&](std::size_t) { return m.loss(true); }, {.k1 = 3});
  });
  CHECK(contains(msg, "train_truncated: steps 1-3: the gradient of parameter 2 's' (2, 2) is inf at [1, 0]"));
  CHECK(values(m.params()) == before);
}

TEST_CASE("check_finite_grads(params, who): names the first NaN or inf in parameter order, then row-major") {
  Tensor a = Tensor::zeros({4}, Dtype::f64).set_requires_grad().set_name("a");
  Tensor b = Tensor::zeros({2, 3}).set_requires_grad().set_name("b");
  Tensor c = Tensor::zeros({3}).set_requires_grad();  // no gradient: skipped
  a.set_grad(Tensor::from_vector(std::vector<double>{1, 2, 3, 4}, {4}, Dtype::f64));
  std::vector<double> gb(6, 0.5);
  gb[4] = NAN;
  gb[5] = INFINITY;
  b.set_grad(Tensor::from_vector(gb, {2, 3}));
  try {
    check_finite_grads({a, c, b}, "mine");
    FAIL("did not throw");
  } catch (const NonFiniteGradError& e) {
    CHECK(std::string(e.what()) ==
          "mine: the gradient of parameter 2 'b' (2, 3) is nan at [1, 1] (flat index 4); no parameter was updated");
    CHECK(e.param == 2);
    CHECK(e.index == 4);
    CHECK(std::isnan(e.value));
  }
  // Every position of a long gradient is found (the block test and the exact search agree).
  for (std::size_t n : {1u, 7u, 1023u, 1024u, 1025u, 5000u}) {
    for (std::size_t pos : {std::size_t{0}, n / 2, n - 1}) {
      std::vector<double> g(n, 1.0);
      g[pos] = -INFINITY;
      for (Dtype dt : {Dtype::f32, Dtype::f64}) {
        Tensor p = Tensor::zeros({n}, dt).set_requires_grad();
        p.set_grad(Tensor::from_vector(g, {n}, dt));
        try {
          check_finite_grads({p}, "w");
          FAIL("did not throw at " << pos << " of " << n);
        } catch (const NonFiniteGradError& e) {
          CHECK(e.index == pos);
          CHECK(e.value == -INFINITY);
        }
      }
    }
  }
  // Finite gradients, the largest finite values and subnormals included, pass.
  Tensor d = Tensor::zeros({4}, Dtype::f64).set_requires_grad();
  d.set_grad(Tensor::from_vector(std::vector<double>{1.7976931348623157e308, -4.9e-324, 0.0, -0.0}, {4}, Dtype::f64));
  CHECK_NOTHROW(check_finite_grads({a, d}, "ok"));
}

TEST_CASE("Optimizer::step: non-finite gradients are applied as PyTorch applies them (documented)") {
  Tensor w = Tensor::ones({2}, Dtype::f64).set_requires_grad();
  w.set_grad(Tensor::from_vector(std::vector<double>{NAN, 1.0}, {2}, Dtype::f64));
  SGD opt({w}, {.lr = 0.1});
  opt.step();
  CHECK(std::isnan(w.to_vector()[0]));
  CHECK(w.to_vector()[1] == doctest::Approx(0.9));
}
