// Gradient-ready hooks (autograd/backward.hpp): when each leaf's .grad() is final in a sweep. The
// expected orders come from the tape's structure (a leaf is done once the sweep passes its first
// consumer), the expected values from hand-derived gradients or from .grad() after the sweep.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include <rewind.hpp>

using namespace rwd;

namespace {

Tensor f64(const std::vector<double>& v, const Shape& s) { return Tensor::from_vector(v, s, float64); }
Tensor param(const std::vector<double>& v, const Shape& s, const char* name) {
  return f64(v, s).set_requires_grad().set_name(name);
}

/// y = x, whose backward writes `tag` to `log` when the sweep reaches it: a marker in the sweep.
Tensor marker(const Tensor& x, std::vector<std::string>& log, std::string tag) {
  return custom_op(
      "marker", {x}, [](const std::vector<Tensor>& in) { return in[0] * 1.0; },
      [&log, tag](BackwardContext& c) {
        log.push_back(tag);
        c.accumulate(0, c.grad_out());
      });
}

/// What the hooks saw: the order of leaves (by name) and a copy of each .grad() at firing time.
struct Seen {
  std::vector<std::string>& log;
  std::vector<std::pair<Tensor, std::vector<double>>> grads;
  GradReadyHook hook;
  explicit Seen(std::vector<std::string>& l)
      : log(l), hook([this](const Tensor& leaf) {
          log.push_back(leaf.name());
          grads.emplace_back(leaf, leaf.grad().to_vector());
        }) {}
  int count(const Tensor& leaf) const {
    int n = 0;
    for (const auto& [t, g] : grads) n += t.same(leaf);
    return n;
  }
  /// Each leaf fired once, and the .grad() it saw then is the .grad() it has now.
  void check_final() const {
    for (const auto& [t, g] : grads) {
      CAPTURE(t.name());
      CHECK(count(t) == 1);
      CHECK(g == t.grad().to_vector());
    }
  }
};

}  // namespace

TEST_CASE("grad ready: a leaf used only late in the forward fires early in the sweep") {
  Tape tape;
  std::vector<std::string> log;
  Tensor W1 = param({0.5, -0.3}, {2}, "W1"), W2 = param({1.5, 0.7}, {2}, "W2");
  Tensor x = f64({0.2, -1.0}, {2});
  // #0 mul(W1, x)  #1 tanh  #2 marker  #3 mul(·, W2)  #4 sum: W2 is done after #3, W1 after #0.
  Tensor loss = sum(marker(tanh(W1 * x), log, "marker") * W2);
  Seen seen(log);
  backward(loss);
  CHECK(log == std::vector<std::string>{"W2", "marker", "W1"});
  seen.check_final();
  // Hand-derived: dW2 = tanh(W1 x),  dW1 = W2 (1 − tanh²(W1 x)) x.
  const std::vector<double> w1{0.5, -0.3}, w2{1.5, 0.7}, xv{0.2, -1.0};
  for (std::size_t i = 0; i < 2; ++i) {
    const double t = std::tanh(w1[i] * xv[i]);
    CHECK(W2.grad().to_vector()[i] == doctest::Approx(t).epsilon(1e-12));
    CHECK(W1.grad().to_vector()[i] == doctest::Approx(w2[i] * (1 - t * t) * xv[i]).epsilon(1e-12));
  }
}

TEST_CASE("grad ready: fires once per leaf, after its last contribution — fan-out, in-place GEMMs, slice regions") {
  Tape tape;
  std::vector<std::string> log;
  // W: two matmuls (the second GEMM adds into .grad() with β = 1); P: sliced twice (regions added in
  // place); b: fan-out y = b*b + b; c: on the tape but sent nothing; d: not on the tape at all.
  Tensor W = param({0.1, 0.2, -0.3, 0.4, 0.5, -0.6}, {2, 3}, "W");
  Tensor P = param({1.0, -2.0, 0.5, 0.25}, {4}, "P");
  Tensor b = param({0.3, -0.8}, {2}, "b");
  Tensor c = param({2.0, 2.0}, {2}, "c");
  Tensor d = param({1.0}, {1}, "d");
  Tensor x = f64({1.0, -1.0, 0.5}, {3, 1});
  Tensor unused = c * 3.0;  // recorded, but not part of the loss
  // (one op a statement: the operands of + are evaluated in no fixed order)
  Tensor Wx = reshape(matmul(W, x), {2});
  Tensor bb = b * b;
  Tensor h = Wx + bb + b;
  Tensor h2 = reshape(matmul(W, reshape(h * slice(P, 0, 0, 2), {2, 1}), true, false), {3});
  Tensor loss = sum(h2 * h2) + sum(slice(P, 0, 2, 4) * h);
  SUBCASE("backward()") {}
  SUBCASE("with .grad() already holding a value (every add lands on an existing gradient)") {
    for (Tensor* p : {&W, &P, &b}) p->set_grad(Tensor::ones(p->shape(), float64));
  }
  Seen seen(log);
  backward(loss);
  seen.check_final();
  CHECK(seen.count(W) == 1);
  CHECK(seen.count(P) == 1);
  CHECK(seen.count(b) == 1);
  CHECK(seen.count(c) == 0);  // nothing reached it
  CHECK(seen.count(d) == 0);  // never on the tape
  // First consumers: c #0, W #1 (matmul), b #3 (b*b), P #6 (the first slice): the sweep finishes P,
  // then b, then W.
  REQUIRE(log.size() == 3);
  CHECK(log.back() == "W");
  CHECK(log[0] == "P");
  CHECK(log[1] == "b");
}

TEST_CASE("grad ready: a 3-step RNN with shared weights fires each once, after step 1's entries") {
  Tape tape;
  std::vector<std::string> log;
  Tensor W = param({0.5, -0.2, 0.1, 0.3}, {2, 2}, "W"), U = param({0.4, -0.6}, {2, 1}, "U");
  Tensor h = f64({0.0, 0.0}, {2, 1});
  const std::vector<double> xs{0.5, -1.0, 2.0};
  for (std::size_t t = 0; t < 3; ++t) {
    // h_t = tanh(W h_{t−1} + U x_t), then a marker: the sweep passes it just before step t's entries.
    Tensor Wh = matmul(W, h);  // one op a statement: the operands of + are evaluated in no fixed order
    Tensor Ux = matmul(U, f64({xs[t]}, {1, 1}));
    h = tanh(Wh + Ux);
    h = marker(h, log, "step " + std::to_string(t + 1));
  }
  Tensor loss = sum(h * f64({1.0, -2.0}, {2, 1}));
  Seen seen(log);
  SUBCASE("backward") { backward(loss); }
  SUBCASE("retain: once per sweep, twice in two sweeps") {
    backward(loss, Tensor(), SweepOptions{.retain = true});
    CHECK(log == std::vector<std::string>{"step 3", "step 2", "step 1", "U", "W"});
    log.clear();
    seen.grads.clear();
    backward(loss);
  }
  SUBCASE("create_graph: .grad() replaced by a recorded sum still fires once, final") {
    backward(loss, Tensor(), SweepOptions{.create_graph = true});
  }
  // W's first consumer is step 1's matmul(W, h0), before U's matmul(U, x1): U is ready first.
  CHECK(log == std::vector<std::string>{"step 3", "step 2", "step 1", "U", "W"});
  seen.check_final();
}

TEST_CASE("grad ready: not in grad(), not after the registration ends, and a leaf root fires at the end") {
  Tape tape;
  std::vector<std::string> log;
  Tensor w = param({0.5, 2.0}, {2}, "w");
  {
    Seen seen(log);
    (void)grad({sum(w * w)}, {w});  // returns gradients, leaves .grad() alone: nothing is "ready"
    CHECK(log.empty());
    Tensor s = param({3.0}, {}, "s");
    backward(s);  // the root is a leaf: its gradient (the seed) is final when the sweep ends
    CHECK(log == std::vector<std::string>{"s"});
    seen.check_final();
  }
  log.clear();
  backward(sum(w * w));  // the hook is unregistered: nothing fires
  CHECK(log.empty());
  CHECK(w.grad().to_vector() == std::vector<double>{1.0, 4.0});
}

TEST_CASE("grad ready: hooks run in registration order, and an optimizer step in the hook equals one after") {
  std::vector<double> after;
  {
    Tape tape;
    Tensor w = param({0.5, -1.0}, {2}, "w"), v = param({2.0, 1.0}, {2}, "v");
    backward(sum(tanh(w * v) * v));
    for (Tensor* p : {&w, &v}) p->assign(*p - 0.1 * p->grad());
    after = concat({w, v}, 0).to_vector();
  }
  Tape tape;
  Tensor w = param({0.5, -1.0}, {2}, "w"), v = param({2.0, 1.0}, {2}, "v");
  std::vector<std::string> order;
  GradReadyHook first([&](const Tensor& p) { order.push_back("first " + p.name()); });
  // No entry still to be swept reads a ready leaf, so it may be updated in place right away.
  GradReadyHook sgd([&](const Tensor& p) {
    order.push_back("sgd " + p.name());
    NoGradGuard no_grad;
    Tensor value = p;
    value.assign(p - 0.1 * p.grad());
  });
  backward(sum(tanh(w * v) * v));
  CHECK(order == std::vector<std::string>{"first v", "sgd v", "first w", "sgd w"});
  CHECK(concat({w, v}, 0).to_vector() == after);
}
