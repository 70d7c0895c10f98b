// Recurrent cells and the stateful wrapper: BPTT gradients by finite differences (3 unrolled steps,
// two losses), and the reset / carry / batch semantics, each with a test that fails if they are wrong.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <memory>

#include <rewind.hpp>

#include "support.hpp"

using namespace rwd;

namespace {

// Every parameter gets distinct nonzero values (peepholes and learned states start at 0 otherwise).
void randomize(Module& m, Generator& gen) {
  for (auto& [k, p] : m.named_parameters()) p.assign(Tensor::uniform(p.shape(), -0.8, 0.8, gen, p.dtype()));
}

enum class Loss { last, all };

// Unrolls `cell` over xs from an explicit initial state; the loss is the last output or a weighted
// sum of all outputs (the weights are gradcheck's own asymmetric scalarization).
Tensor unroll(Cell& cell, const std::vector<Tensor>& xs, const State& s0, Loss loss) {
  State s = s0;
  std::vector<Tensor> ys;
  for (const Tensor& x : xs) {
    auto [y, next] = cell.step(x, s);
    ys.push_back(y);
    s = next;
  }
  return loss == Loss::last ? ys.back() : stack(ys, 0);
}

void check_cell(Cell& cell, std::size_t batch, bool learned_state) {
  Generator gen(17);
  randomize(cell, gen);
  std::vector<Tensor> xs;
  for (int t = 0; t < 3; ++t)
    xs.push_back(Tensor::uniform({cell.input_size(), batch}, -1, 1, gen, float64).set_requires_grad().set_name("x" + std::to_string(t + 1)));
  State s0;
  if (!learned_state)
    for (std::size_t k = 0; k < cell.initial_state(batch).size(); ++k)
      s0.push_back(Tensor::uniform({cell.output_size(), batch}, -0.5, 0.5, gen, float64).set_requires_grad().set_name("s0_" + std::to_string(k)));
  std::vector<Tensor> inputs = cell.parameters();
  for (auto& [k, p] : cell.named_parameters()) p.set_name(k);
  inputs.insert(inputs.end(), xs.begin(), xs.end());
  inputs.insert(inputs.end(), s0.begin(), s0.end());
  for (Loss loss : {Loss::last, Loss::all}) {
    auto f = [&](const std::vector<Tensor>&) { return unroll(cell, xs, learned_state ? cell.initial_state(batch) : s0, loss); };
    GradcheckReport r = gradcheck(f, inputs);
    CHECK_MESSAGE(r.ok(), cell.repr() << (loss == Loss::last ? ", last output" : ", all outputs") << "\n" << r.str());
  }
}

}  // namespace

TEST_CASE("recurrent: RNNCell gradients through 3 steps (tanh, relu, learned h0)") {
  Generator gen(1);
  SUBCASE("tanh") {
    RNNCell c(3, 4, "tanh", {.dtype = float64}, gen);
    check_cell(c, 2, false);
  }
  SUBCASE("relu") {
    RNNCell c(3, 4, "relu", {.dtype = float64}, gen);
    check_cell(c, 2, false);
  }
  SUBCASE("learned initial state") {
    RNNCell c(2, 3, "tanh", {.learn_initial_state = true, .dtype = float64}, gen);
    check_cell(c, 4, true);
  }
}

TEST_CASE("recurrent: LSTMCell gradients through 3 steps (plain, peephole, learned h0 and c0)") {
  Generator gen(2);
  SUBCASE("plain") {
    LSTMCell c(3, 4, {.dtype = float64}, gen);
    check_cell(c, 2, false);
  }
  SUBCASE("peephole") {
    LSTMCell c(2, 3, {.peephole = true, .dtype = float64}, gen);
    check_cell(c, 3, false);
  }
  SUBCASE("learned initial state") {
    LSTMCell c(2, 3, {.learn_initial_state = true, .dtype = float64}, gen);
    check_cell(c, 2, true);
  }
}

TEST_CASE("recurrent: GRUCell gradients through 3 steps (reset after, reset before)") {
  Generator gen(3);
  for (bool after : {true, false}) {
    GRUCell c(3, 4, {.reset_after = after, .dtype = float64}, gen);
    check_cell(c, 2, false);
  }
}

TEST_CASE("recurrent: cell equations against hand-computed values") {
  // One step of each cell on a batch of one, against the published equations in plain C++.
  Generator gen(4);
  const std::size_t I = 2, H = 3;
  std::vector<double> x = {0.3, -0.7}, h = {0.1, -0.2, 0.4}, c = {0.5, 0.0, -0.3};
  auto sig = [](double v) { return 1 / (1 + std::exp(-v)); };
  auto row = [](const Tensor& W, std::size_t r, const std::vector<double>& v) {
    double s = 0;
    for (std::size_t k = 0; k < v.size(); ++k) s += W.at({r, k}) * v[k];
    return s;
  };
  Tensor xt = Tensor::from_vector(x, {I, 1}, float64), ht = Tensor::from_vector(h, {H, 1}, float64),
         ct = Tensor::from_vector(c, {H, 1}, float64);
  SUBCASE("LSTM, gate order i, f, g, o, with peepholes") {
    LSTMCell cell(I, H, {.peephole = true, .dtype = float64}, gen);
    randomize(cell, gen);
    auto [y, s] = cell.step(xt, {ht, ct});
    for (std::size_t j = 0; j < H; ++j) {
      auto pre = [&](std::size_t gate) {
        const std::size_t r = gate * H + j;
        return row(cell.weight_ih, r, x) + cell.bias_ih.at({r}) + row(cell.weight_hh, r, h) + cell.bias_hh.at({r});
      };
      const double i = sig(pre(0) + cell.w_ci.at({j}) * c[j]), f = sig(pre(1) + cell.w_cf.at({j}) * c[j]);
      const double g = std::tanh(pre(2));
      const double cn = f * c[j] + i * g;
      const double on = sig(pre(3) + cell.w_co.at({j}) * cn);
      CHECK(s[1].at({j, 0}) == doctest::Approx(cn));
      CHECK(y.at({j, 0}) == doctest::Approx(on * std::tanh(cn)));
    }
  }
  SUBCASE("GRU, gate order r, z, n, both forms") {
    for (bool after : {true, false}) {
      GRUCell cell(I, H, {.reset_after = after, .dtype = float64}, gen);
      randomize(cell, gen);
      auto [y, s] = cell.step(xt, {ht});
      std::vector<double> r(H), z(H);
      for (std::size_t j = 0; j < H; ++j) {
        r[j] = sig(row(cell.weight_ih, j, x) + cell.bias_ih.at({j}) + row(cell.weight_hh, j, h) + cell.bias_hh.at({j}));
        z[j] = sig(row(cell.weight_ih, H + j, x) + cell.bias_ih.at({H + j}) + row(cell.weight_hh, H + j, h) + cell.bias_hh.at({H + j}));
      }
      std::vector<double> rh(H);
      for (std::size_t j = 0; j < H; ++j) rh[j] = r[j] * h[j];
      for (std::size_t j = 0; j < H; ++j) {
        const std::size_t n_row = 2 * H + j;
        const double nx = row(cell.weight_ih, n_row, x) + cell.bias_ih.at({n_row});
        const double n = after ? std::tanh(nx + r[j] * (row(cell.weight_hh, n_row, h) + cell.bias_hh.at({n_row})))
                               : std::tanh(nx + row(cell.weight_hh, n_row, rh) + cell.bias_hh.at({n_row}));
        CHECK(y.at({j, 0}) == doctest::Approx((1 - z[j]) * n + z[j] * h[j]));
      }
    }
  }
  SUBCASE("a step that does not fit names the cell, the expected and the actual size") {
    RNNCell cell(I, H, "tanh", {.dtype = float64}, gen);
    CHECK_THROWS_WITH_AS(cell.step(Tensor::zeros({5, 1}, float64), {ht}),
                         "RNNCell(2 => 3, tanh): input (5, 1): expected (2, batch) or (2,) — features along axis 0, got 5 features",
                         ShapeError);
  }
}

TEST_CASE("recurrent: Recur keeps state between calls, and reset brings it back") {
  // The same through a Recur and through the RNN factory's Recurrent (one layer steps like a Recur).
  Generator gen(5);
  Chain a(Recur(RNNCell(2, 5, "tanh", {}, gen)), Dense(5, 1, {}, true, float32, gen));
  Chain b(RNN(2, 5, "tanh", {}, gen), Dense(5, 1, {}, true, float32, gen));
  CHECK(a.repr() == "Chain(Recur(RNNCell(2 => 5, tanh)), Dense(5 => 1))");
  CHECK(b.repr() == "Chain(RNN(2 => 5, tanh), Dense(5 => 1))");
  for (Chain* m : {&a, &b}) {
    Tensor x = Tensor::from_vector(std::vector<double>{1, 2}, {2});
    const std::vector<double> y1 = (*m)(x).to_vector(), y2 = (*m)(x).to_vector();
    CHECK(y1 != y2);  // same input, different output: the state moved
    reset(*m);
    CHECK((*m)(x).to_vector() == y1);  // nothing leaks across reset
    CHECK((*m)(x).to_vector() == y2);
  }
}

TEST_CASE("recurrent: a batch-size change without reset is an error") {
  Recur r(RNNCell(2, 3));
  r(Tensor::zeros({2, 4}));
  CHECK_THROWS_WITH_AS(r(Tensor::zeros({2, 5})),
                       "Recur(RNNCell(2 => 3, tanh)): input (2, 5) has batch 5 but the carried state (3, 4) has batch 4; "
                       "call reset() before feeding a batch of another size",
                       ShapeError);
  reset(r);
  CHECK(r(Tensor::zeros({2, 5})).shape() == Shape{3, 5});
  Recurrent l = RNN(2, 3);
  l(Tensor::zeros({2, 4}));
  CHECK_THROWS_WITH_AS(l(Tensor::zeros({2, 5})),
                       "RNN(2 => 3, tanh): input (2, 5) has batch 5 but the carried state (3, 4) has batch 4; "
                       "call reset() before feeding a batch of another size",
                       ShapeError);
  reset(l);
  CHECK(l(Tensor::zeros({2, 5})).shape() == Shape{3, 5});
}

TEST_CASE("recurrent: after backward the state keeps its value but not its history") {
  Generator gen(6);
  Recur r(RNNCell(2, 3, "tanh", {.dtype = float64}, gen));
  Tensor x = Tensor::uniform({2, 2}, -1, 1, gen, float64);
  sum(r(x)).backward();
  const std::vector<double> carried = r.state()[0].to_vector();  // readable: not released with the tape
  CHECK(r.state()[0].is_leaf());
  // The next batch's gradient stops at the boundary: d(loss₂)/dW only through the second step.
  r.zero_grad();
  Tensor y = r(x);
  sum(y).backward();
  RNNCell& cell = static_cast<RNNCell&>(r.cell());
  Tensor h_prev = Tensor::from_vector(carried, {3, 2}, float64);
  Tensor W = cell.weight_hh.detach().set_requires_grad();
  sum(tanh(matmul(cell.weight_ih.detach(), x) + reshape(cell.bias_ih.detach(), {3, 1}) + matmul(W, h_prev) +
           reshape(cell.bias_hh.detach(), {3, 1})))
      .backward();
  const std::vector<double> expected = W.grad().to_vector(), got = cell.weight_hh.grad().to_vector();
  for (std::size_t k = 0; k < got.size(); ++k) CHECK(got[k] == doctest::Approx(expected[k]).epsilon(1e-12));
}

TEST_CASE("recurrent: reset_rows resets only the sequences that ended") {
  Generator gen(7);
  Recur r(RNNCell(1, 2, "tanh", {.dtype = float64}, gen));
  Tensor x = Tensor::ones({1, 3}, float64);
  r(x);
  r(x);
  const Tensor before = r.state()[0].detach();
  reset_rows(r, {false, true, false});
  for (std::size_t j = 0; j < 2; ++j) {
    CHECK(r.state()[0].at({j, 0}) == before.at({j, 0}));
    CHECK(r.state()[0].at({j, 1}) == 0.0);
    CHECK(r.state()[0].at({j, 2}) == before.at({j, 2}));
  }
  // Column 1 now runs like a fresh sequence: one step from zero equals the first step of a new Recur.
  Tensor y = r(x);
  reset(r);
  Tensor fresh = r(x);
  CHECK(y.at({0, 1}) == fresh.at({0, 1}));
  CHECK(y.at({0, 0}) != fresh.at({0, 0}));
}

TEST_CASE("recurrent: truncated BPTT — detach_state stops gradients between windows") {
  Generator gen(8);
  Recur r(RNNCell(1, 2, "tanh", {.dtype = float64}, gen));
  Tensor x = Tensor::full({1, 1}, 0.5, float64);
  // Window 1: two steps, no backward. Window 2 after detach: the loss depends on W_hh only through
  // the steps inside the window, so it equals a fresh run from the carried state.
  r(x);
  r(x);
  detach_state(r);
  const Tensor h = r.state()[0].detach();
  RNNCell& cell = static_cast<RNNCell&>(r.cell());
  sum(r(x)).backward();
  const std::vector<double> truncated = cell.weight_hh.grad().to_vector();
  r.zero_grad();
  Recur fresh(std::make_shared<RNNCell>(1, 2, "tanh", CellOptions{.dtype = float64}, gen));
  fresh.load_state_dict(r.state_dict());
  fresh.set_state({h});
  sum(fresh(x)).backward();
  CHECK(static_cast<RNNCell&>(fresh.cell()).weight_hh.grad().to_vector() == truncated);
  // Without detach, the gradient also flows into the earlier window: it differs.
  reset(r);
  r.zero_grad();
  r(x);
  r(x);
  sum(r(x)).backward();
  CHECK(cell.weight_hh.grad().to_vector() != truncated);
}

TEST_CASE("recurrent: a whole (time, features, batch) sequence through Recur, against the LSTM equations by hand") {
  // The reference is an independent loop of the published equations (gate order i, f, g, o) in plain
  // C++, not Recur's own stepping: two 3-D calls in a row, so the second must start from the state the
  // first left, which must be its last step's.
  Generator gen(9);
  const std::size_t I = 2, H = 3, B = 2, T = 3;
  Recur r(LSTMCell(I, H, {.dtype = float64}, gen));
  LSTMCell& cell = static_cast<LSTMCell&>(r.cell());
  randomize(cell, gen);
  auto sig = [](double v) { return 1 / (1 + std::exp(-v)); };
  std::vector<std::vector<double>> h(B, std::vector<double>(H, 0.0)), c = h;  // per column b
  for (int call = 0; call < 2; ++call) {
    Tensor seq = Tensor::uniform({T, I, B}, -1, 1, gen, float64);
    Tensor ys = r(seq);
    REQUIRE(ys.shape() == Shape{T, H, B});
    for (std::size_t t = 0; t < T; ++t)
      for (std::size_t b = 0; b < B; ++b) {
        auto pre = [&](std::size_t gate, std::size_t j) {
          const std::size_t row = gate * H + j;
          double v = cell.bias_ih.at({row}) + cell.bias_hh.at({row});
          for (std::size_t k = 0; k < I; ++k) v += cell.weight_ih.at({row, k}) * seq.at({t, k, b});
          for (std::size_t k = 0; k < H; ++k) v += cell.weight_hh.at({row, k}) * h[b][k];
          return v;
        };
        std::vector<double> hn(H), cn(H);
        for (std::size_t j = 0; j < H; ++j) {
          const double i = sig(pre(0, j)), f = sig(pre(1, j)), g = std::tanh(pre(2, j)), o = sig(pre(3, j));
          cn[j] = f * c[b][j] + i * g;
          hn[j] = o * std::tanh(cn[j]);
        }
        h[b] = hn;
        c[b] = cn;
        for (std::size_t j = 0; j < H; ++j)
          CHECK_MESSAGE(ys.at({t, j, b}) == doctest::Approx(h[b][j]).epsilon(1e-12), "call " << call << ", t " << t);
      }
    // The carried state is the last step's {h, c}.
    REQUIRE(r.state().size() == 2);
    for (std::size_t b = 0; b < B; ++b)
      for (std::size_t j = 0; j < H; ++j) {
        CHECK(r.state()[0].at({j, b}) == doctest::Approx(h[b][j]).epsilon(1e-12));
        CHECK(r.state()[1].at({j, b}) == doctest::Approx(c[b][j]).epsilon(1e-12));
      }
  }
  // And bit for bit what stepping the same Recur one call at a time gives (the same ops in the same order).
  Tensor seq = Tensor::uniform({T, I, B}, -1, 1, gen, float64);
  reset(r);
  const std::vector<double> whole = r(seq).to_vector(), whole_c = r.state()[1].to_vector();
  reset(r);
  std::vector<double> stepped;
  for (std::size_t t = 0; t < T; ++t)
    for (double v : r(squeeze(slice(seq, 0, t, t + 1), 0)).to_vector()) stepped.push_back(v);
  CHECK(whole == stepped);
  CHECK(whole_c == r.state()[1].to_vector());
}

namespace {

// A user's stateful layer, not a Recur: s_t = W x_t + ½ s_{t−1}, carried between calls. It overrides
// Module's three state hooks and counts the detaches, and records whether each call found its carried
// state cut from its history (a leaf).
class Leaky : public Module {
 public:
  Leaky(std::size_t n, Generator& gen) { W = register_parameter("W", init::uniform_fan_in({n, n}, n, gen, float64)); }
  Tensor forward(const Tensor& x) override {
    found_leaf.push_back(!s.defined() || s.is_leaf());
    Tensor next = matmul(W, x);
    if (s.defined()) next = next + 0.5 * s;
    next.keep_on_clear();  // the state outlives the tape, as Recur's does
    s = next;
    return s;
  }
  std::string repr() const override { return "Leaky"; }
  void reset_state() override { s = Tensor(); }
  void detach_state() override {
    ++detaches;
    if (s.defined()) s = s.detach();
  }
  void reset_rows(const std::vector<bool>& done) override {
    if (!s.defined()) return;
    std::vector<double> keep;
    for (bool d : done) keep.push_back(d ? 0.0 : 1.0);
    s = s * Tensor::from_vector(keep, {1, done.size()}, float64);
  }
  Tensor W, s;
  int detaches = 0;
  std::vector<bool> found_leaf;
};

}  // namespace

TEST_CASE("recurrent: a user's stateful layer is detached and row-reset through a Chain (Module's virtual hooks)") {
  Generator gen(12);
  auto leaky = std::make_shared<Leaky>(3, gen);
  Chain m(Dense(2, 3, {}, true, float64, gen), leaky);
  Tensor x = Tensor::uniform({2, 3}, -1, 1, gen, float64);
  SUBCASE("reset_rows") {
    m(x);
    m(x);
    const Tensor before = leaky->s.detach();
    reset_rows(m, {false, true, false});
    for (std::size_t j = 0; j < 3; ++j) {
      CHECK(leaky->s.at({j, 0}) == before.at({j, 0}));
      CHECK(leaky->s.at({j, 1}) == 0.0);
      CHECK(leaky->s.at({j, 2}) == before.at({j, 2}));
    }
  }
  SUBCASE("detach_state") {
    m(x);
    m(x);
    CHECK_FALSE(leaky->s.is_leaf());
    detach_state(m);
    CHECK(leaky->detaches == 1);
    CHECK(leaky->s.is_leaf());
    reset(m);
    CHECK_FALSE(leaky->s.defined());
  }
  SUBCASE("train_truncated detaches it every k2 steps and after every window") {
    SGD opt(m.parameters(), {.lr = 0.01});
    const Tensor target = Tensor::zeros({3, 3}, float64);
    // TBPTT(4, 2) over 8 steps: detached inside each window before steps 2 and 6, and after each window
    // (before steps 4 and 8); a backward also leaves the kept state a leaf (before step 4).
    train_truncated(m, opt, 8, [&](std::size_t) { return mse_loss(m(x), target); }, {.k1 = 4, .k2 = 2});
    CHECK(leaky->detaches == 4);
    CHECK(leaky->found_leaf == std::vector<bool>{true, false, true, false, true, false, true, false});
  }
}

TEST_CASE("recurrent: tape memory grows linearly with sequence length (LSTM bytes per step)") {
  const DropAtAnySize drop_at_any_size;
  Generator gen(10);
  Recurrent r = LSTM(32, 64, {}, gen);  // one layer, stepped: a Recur inside
  auto bytes_after = [&](std::size_t steps) {
    Tape tape;
    reset(r);
    Tensor x = Tensor::uniform({32, 16}, -1, 1, gen);
    Tensor loss = Tensor::scalar(0.0);
    for (std::size_t t = 0; t < steps; ++t) loss = loss + sum(r(x));
    return std::pair{tape_stats(tape).bytes, tape.size()};
  };
  const auto [b10, n10] = bytes_after(10);
  const auto [b50, n50] = bytes_after(50);
  const auto [b100, n100] = bytes_after(100);
  const double per_step = static_cast<double>(b100 - b50) / 50.0;
  CHECK(static_cast<double>(b50 - b10) / 40.0 == per_step);  // exactly the same cost per step: linear
  CHECK((n100 - n50) * 40 == (n50 - n10) * 50);
  MESSAGE("LSTM(32 => 64), batch 16, float32: " << per_step << " bytes of tape values per step ("
                                               << (n100 - n50) / 50 << " entries per step)");
}
