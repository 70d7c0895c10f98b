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

// Keras' mask semantics, written out per column with the layer's own cells stepped by hand: a masked
// step is skipped (the state carried over it, the output 0), wherever it is — holes in the middle, a
// padded start, a column with no real step at all (outputs 0, state the initial one). The reverse
// direction visits the real steps last to first; `last` is each direction's output at its last real
// step in its own order (0 for a column without one).
TEST_CASE("audit s12: bidirectional masks with holes and an empty column are Keras' skipped steps") {
  const std::size_t T = 4, F = 3, H = 2, B = 4;
  Generator gen(12);
  for (std::size_t every : {0, 1, 3})  // checkpointed BPTT (every k steps; 0: off) runs its own loop
  for (Merge merge : {Merge::concat, Merge::sum}) {
    CAPTURE(static_cast<int>(merge));
    CAPTURE(every);
    const RecurrentOptions::Checkpointing ck{.on = every > 0, .every = every};
    Recurrent r = LSTM(F, H, {.dtype = float64}, {.bidirectional = true, .merge = merge, .checkpoint = ck}, gen);
    Recurrent rl = LSTM(F, H, {.dtype = float64},
                        {.bidirectional = true, .merge = merge, .return_sequences = false, .checkpoint = ck}, gen);
    rl.load_state_dict(r.state_dict());
    const Tensor x = Tensor::randn({T, F, B}, gen, float64);
    // columns: a hole in the middle; a padded start; no real step; all real
    const std::vector<double> m = {1, 0, 0, 1,  //
                                   0, 1, 0, 1,  //
                                   1, 1, 0, 1,  //
                                   1, 0, 0, 1};
    const Tensor mask = f64(m, {T, B});
    // The gradients of every output and of `last` by central differences (holes, checkpointing and all).
    const Tensor xg = x.detach().set_requires_grad();
    const GradcheckReport gy = gradcheck([&](const std::vector<Tensor>& in) { return r(in[0], mask); }, {xg});
    CHECK_MESSAGE(gy.ok(), gy);
    const GradcheckReport gl = gradcheck([&](const std::vector<Tensor>& in) { return rl(in[0], mask); }, {xg});
    CHECK_MESSAGE(gl.ok(), gl);
    const std::vector<double> y = r(x, mask).to_vector(), last = rl(x, mask).to_vector();
    const std::size_t O = merge == Merge::concat ? 2 * H : H;
    REQUIRE(y.size() == T * O * B);
    const std::vector<double> xv = x.to_vector();
    for (std::size_t b = 0; b < B; ++b) {
      std::vector<double> want_y(T * O, 0.0), want_last(O, 0.0);
      for (std::size_t d = 0; d < 2; ++d) {
        Cell& cell = r.cell(0, d == 1);
        State s = cell.initial_state(1);
        std::vector<double> o(H, 0.0);  // this direction's latest output: its `last` at the end
        for (std::size_t k = 0; k < T; ++k) {
          const std::size_t t = d == 0 ? k : T - 1 - k;
          if (m[t * B + b] == 0) continue;
          std::vector<double> col(F);
          for (std::size_t f = 0; f < F; ++f) col[f] = xv[(t * F + f) * B + b];
          auto [out, next] = cell.step(f64(col, {F, 1}), s);
          s = next;
          o = out.to_vector();
          for (std::size_t i = 0; i < H; ++i) want_y[t * O + (merge == Merge::concat ? d * H + i : i)] += o[i];
        }
        for (std::size_t i = 0; i < H; ++i) want_last[merge == Merge::concat ? d * H + i : i] += o[i];
        // the final state: the state after the column's last real step (the initial one without any)
        const std::vector<double> h = r.final_state(0, d == 1)[1].to_vector(), want_c = s[1].to_vector();
        for (std::size_t i = 0; i < H; ++i)
          CHECK_MESSAGE(std::abs(h[i * B + b] - want_c[i]) <= 1e-13, "c of direction " << d << " column " << b);
      }
      for (std::size_t t = 0; t < T; ++t)
        for (std::size_t i = 0; i < O; ++i)
          CHECK_MESSAGE(std::abs(y[(t * O + i) * B + b] - want_y[t * O + i]) <= 1e-13,
                        "y at t=" << t << " row " << i << " column " << b);
      for (std::size_t i = 0; i < O; ++i)
        CHECK_MESSAGE(std::abs(last[i * B + b] - want_last[i]) <= 1e-13, "last row " << i << " column " << b);
    }
  }
}

TEST_CASE("audit s12: Seq2Seq hostile sources, targets and decode options") {
  Generator gen(3);
  auto enc = std::make_shared<Recurrent>(LSTM(4, 5, {.dtype = float64}, {}, gen));
  Seq2Seq model(6, 7, enc, {.attention = AttentionKind::general, .dtype = float64}, gen);
  const Tensor src = f64({1, 2, 3, 4}, {2, 2}), tgt = f64({1, 2, 3, 2}, {2, 2});
  throws_naming([&] { model(f64({1, 9, 3, 4}, {2, 2}), Tensor(), tgt); }, "Embedding");
  throws_naming([&] { model(src, Tensor(), f64({1, 9, 3, 4}, {2, 2})); }, "Embedding");
  throws_naming([&] { model(src, f64({1, 1, 0, 0.5}, {2, 2}), tgt); }, "mask");
  throws_naming([&] { model(src, f64({0, 1, 0, 1}, {2, 2}), tgt); }, "mask");
  throws_naming([&] { model(src, Tensor(), f64({1, 2, 3, 2, 1, 1}, {3, 1, 2})); }, "Seq2Seq");
  throws_naming([&] { model(Tensor(), Tensor(), tgt); }, "");
  model.eval();
  NoGradGuard ng;
  throws_naming([&] { model.greedy(src, {}, {.max_length = 0}); }, "max_length");
  throws_naming([&] { model.beam_search(src, {}, {.beam_width = 0}); }, "beam_width");
  throws_naming([&] { model.beam_search(src, {}, {.alpha = nan_v}); }, "alpha");
  throws_naming([&] { model.beam_search(src, {}, {.alpha = -1}); }, "alpha");
}

// Logits (classes 5, time 3, batch 1) with class_weight and an ignored middle step; the numbers were
// printed by PyTorch 1.13.0a0 (float64) from
//   x = torch.tensor(X).reshape(5, 3).T  (rows = the (t, b) examples in row-major order)
//   F.cross_entropy(x, torch.tensor([4, -100, 1]), weight=torch.tensor(CW), reduction=R); then .backward()
TEST_CASE("audit s12: cross_entropy over (classes, time, batch 1) with class_weight and ignore_index matches PyTorch") {
  const std::vector<double> X = {4.082, -5.111, 0.836, -1.136, -0.905, -0.431, -4.04, -0.464,
                                 -1.73, 6.646,  0.452, -0.705, -0.563, -1.336, -2.11};
  const std::vector<double> CW = {0.525, 1.544, 1.554, 1.221, 1.858};
  struct Case {
    Reduction reduction;
    double value;
    std::vector<double> grad;
  };
  const std::vector<Case> cases = {
      {Reduction::mean, 4.77374177484025,
       {0.0390023394746875, 0.0, 0.2792525124258884, 0.00021132070529160848, 0.0, -0.37519211805841834,
        1.1581128383518546e-05, 0.0, 0.021458405533061935, 0.5065492884807606, 0.0, 0.05980662465217804,
        -0.5457745297891232, 0.0, 0.01467457544728995}},
      {Reduction::sum, 16.24026951800653,
       {0.1326859588928869, 0.0, 0.9500170472728723, 0.0007189130394020521, 0.0, -1.2764035856347393,
        3.9398998760730096e-05, 0.0, 0.0730014956234767, 1.7232806794115476, 0.0, 0.2034621370667097,
        -1.856724950342597, 0.0, 0.04992290567168041}}};
  for (const Case& c : cases) {
    Tensor x = f64(X, {5, 3, 1}).set_requires_grad();
    const Tensor l =
        cross_entropy(x, Indices{4, -100, 1}, {.reduction = c.reduction, .axis = 0, .ignore_index = -100, .class_weight = f64(CW, {5})});
    CHECK(l.item() == doctest::Approx(c.value).epsilon(1e-12));
    l.backward();
    const std::vector<double> g = x.grad().to_vector();
    for (std::size_t i = 0; i < g.size(); ++i)
      CHECK_MESSAGE(std::abs(g[i] - c.grad[i]) <= 1e-12 * (1 + std::abs(c.grad[i])), "grad " << i << ": " << g[i]);
  }
}
