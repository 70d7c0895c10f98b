// Hostile input against the entry points issue 12 added: affine's wide base window, affine_steps and
// affine_seq, Dense::forward_sequence and TimeDistributed(Dense), the cells' project_input /
// step_projected, run_sequence's hoisted projection, packed weights, the pool's thread count, and
// the non-finite values the vector kernels see. Bad input must give an rwd exception naming the op
// or layer and the shapes — never a crash, a hang or wrong numbers — and every fast path must give
// the slow composition's values and gradients (float64 tightly, float32 within rounding).
#include <doctest/doctest.h>

#include <atomic>
#include <climits>
#include <cmath>
#include <cstdint>
#include <limits>
#include <rewind.hpp>
#include <string>
#include <thread>
#include <vector>

#include "kernels/packed.hpp"
#include "kernels/pool.hpp"
#include "support.hpp"

using namespace rwd;

namespace {

constexpr std::size_t kHuge = std::numeric_limits<std::size_t>::max();

// Hoists run_sequence's input projection from `n` inputs × batch on, for one scope.
struct HoistFrom {
  std::size_t old;
  explicit HoistFrom(std::size_t n) : old(detail::set_projection_min_inputs(n)) {}
  ~HoistFrom() { detail::set_projection_min_inputs(old); }
};

Tensor random(const Shape& s, Generator& gen, Dtype dtype = Dtype::f32) {
  return Tensor::uniform(s, -1, 1, gen, dtype);
}

// Largest |a − b| / (atol + rtol·|b|) over two value lists (> 1: outside the tolerance).
double worst(const std::vector<double>& a, const std::vector<double>& b, double atol, double rtol) {
  REQUIRE(a.size() == b.size());
  double w = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const bool both_nan = std::isnan(a[i]) && std::isnan(b[i]);
    if (both_nan || a[i] == b[i]) continue;
    if (std::isnan(a[i]) || std::isnan(b[i])) return INFINITY;
    w = std::max(w, std::abs(a[i] - b[i]) / (atol + rtol * std::abs(b[i])));
  }
  return w;
}

}  // namespace

// ---- affine's wide base window ----

TEST_CASE("hostile: affine(W, x, b, base, base_first) refuses a window past the base, overflowing sizes included") {
  Generator gen(1);
  const Tensor W = random({3, 4}, gen), x = random({4, 2}, gen), b = random({3}, gen), base = random({3, 10}, gen);
  // Inside: columns [8, 10).
  CHECK(affine(W, x, b, base, 8).shape() == Shape{3, 2});
  // Just past the end, far past it, and so far that base_first + n wraps around size_t.
  for (std::size_t first : {std::size_t{9}, std::size_t{10}, std::size_t{1} << 40, kHuge - 1, kHuge}) {
    CAPTURE(first);
    const std::string msg = message_of<ShapeError>([&] { (void)affine(W, x, b, base, first); });
    CHECK(contains(msg, "affine"));
    CHECK(contains(msg, "(3, 10)"));
  }
  // Without a bias, too (the window's own check).
  CHECK(contains(message_of<ShapeError>([&] { (void)affine(W, x, Tensor(), base, kHuge); }), "affine"));
}

TEST_CASE("hostile: affine's base window refuses a wrong rank, rows or dtype, and a base_first with no base") {
  Generator gen(2);
  const Tensor W = random({3, 4}, gen), x = random({4, 2}, gen), b = random({3}, gen);
  CHECK(contains(message_of<ShapeError>([&] { (void)affine(W, x, b, random({3, 2, 5}, gen), 1); }), "affine"));
  CHECK(contains(message_of<ShapeError>([&] { (void)affine(W, x, b, random({4, 10}, gen), 1); }), "(4, 10)"));
  CHECK(contains(message_of<ShapeError>([&] {
                   (void)affine(W, random({4}, gen), b, random({3, 10}, gen), 1);
                 }),
                 "affine"));
  CHECK(contains(message_of<DtypeError>([&] {
                   (void)affine(W, x, b, random({3, 10}, gen, Dtype::f64), 1);
                 }),
                 "affine"));
  CHECK(contains(message_of<ShapeError>([&] { (void)affine(W, x, b, Tensor(), 3); }), "base_first"));
  // Undefined operands: an rwd error, not a crash.
  CHECK_THROWS_AS((void)affine(Tensor(), x, b, random({3, 10}, gen), 1), TapeError);
  CHECK_THROWS_AS((void)affine(W, Tensor(), b, random({3, 10}, gen), 1), TapeError);
}

TEST_CASE("hostile: affine's base window gives the composition's value and gradients (float64), NaN where it belongs") {
  Generator gen(3);
  const Dtype f64 = Dtype::f64;
  Tensor W = random({5, 4}, gen, f64).set_requires_grad(), x = random({4, 3}, gen, f64).set_requires_grad();
  Tensor b = random({5}, gen, f64).set_requires_grad(), base = random({5, 11}, gen, f64).set_requires_grad();
  const Tensor w_out = random({5, 3}, gen, f64);
  auto grads = [&](bool fused) {
    for (Tensor* p : {&W, &x, &b, &base}) p->zero_grad(true);
    Tape tape;
    const Tensor y = fused ? affine(W, x, b, base, 6) : matmul(W, x) + reshape(b, {5, 1}) + slice(base, 1, 6, 9);
    std::vector<double> all = y.to_vector();
    sum(y * w_out).backward();
    for (Tensor* p : {&W, &x, &b, &base}) {
      const std::vector<double> g = p->grad().to_vector();
      all.insert(all.end(), g.begin(), g.end());
    }
    return all;
  };
  CHECK(worst(grads(true), grads(false), 1e-12, 1e-12) <= 1);
  // A NaN in one column of x reaches that output column only; an Inf in the base's window its row.
  NoGradGuard no_grad;
  Tensor xn = x.detach().clone(), bn = base.detach().clone();
  xn.data<double>()[1 * 3 + 2] = NAN;        // x[1, 2]
  bn.data<double>()[3 * 11 + 7] = INFINITY;  // base[3, 7]: output (3, 1)
  const std::vector<double> y = affine(W, xn, b, bn, 6).to_vector();
  for (std::size_t i = 0; i < 5; ++i)
    for (std::size_t j = 0; j < 3; ++j) {
      CAPTURE(i);
      CAPTURE(j);
      const double v = y[i * 3 + j];
      if (j == 2)
        CHECK(std::isnan(v));
      else if (i == 3 && j == 1)
        CHECK(v == INFINITY);
      else
        CHECK(std::isfinite(v));
    }
}

// ---- affine_steps and affine_seq ----

TEST_CASE("hostile: affine_steps refuses no blocks, wrong ranks, rows and dtypes, and undefined blocks") {
  Generator gen(4);
  const Tensor W = random({3, 4}, gen), b = random({3}, gen);
  CHECK(contains(message_of<ValueError>([&] { (void)affine_steps(W, {}, b); }), "affine_steps"));
  CHECK(contains(message_of<ShapeError>([&] {
                   (void)affine_steps(W, {random({4, 2}, gen), random({5, 2}, gen)}, b);
                 }),
                 "(5, 2)"));
  CHECK(contains(message_of<ShapeError>([&] { (void)affine_steps(W, {random({4}, gen)}, b); }), "affine_steps"));
  CHECK(contains(message_of<ShapeError>([&] {
                   (void)affine_steps(random({3, 4, 1}, gen), {random({4, 2}, gen)}, b);
                 }),
                 "affine_steps"));
  CHECK(contains(message_of<DtypeError>([&] {
                   (void)affine_steps(W, {random({4, 2}, gen), random({4, 2}, gen, Dtype::f64)}, b);
                 }),
                 "affine_steps"));
  CHECK(contains(message_of<DtypeError>([&] {
                   (void)affine_steps(W, {random({4, 2}, gen)}, random({3}, gen, Dtype::f64));
                 }),
                 "affine_steps"));
  CHECK(contains(message_of<ShapeError>([&] {
                   (void)affine_steps(W, {random({4, 2}, gen)}, random({4}, gen));
                 }),
                 "affine_steps"));
  CHECK_THROWS_AS((void)affine_steps(W, {random({4, 2}, gen), Tensor()}, b), TapeError);
  CHECK_THROWS_AS((void)affine_steps(Tensor(), {random({4, 2}, gen)}, b), TapeError);
}

TEST_CASE(
    "hostile: affine_steps of mixed batch sizes, a zero-width block among them, equals affine of the concatenation") {
  Generator gen(5);
  const Dtype f64 = Dtype::f64;
  Tensor W = random({6, 4}, gen, f64).set_requires_grad(), b = random({6, 1}, gen, f64).set_requires_grad();
  std::vector<Tensor> xs = {random({4, 3}, gen, f64).set_requires_grad(), random({4, 0}, gen, f64).set_requires_grad(),
                            random({4, 1}, gen, f64).set_requires_grad(), random({4, 5}, gen, f64).set_requires_grad()};
  const Tensor w_out = random({6, 9}, gen, f64);
  auto run = [&](bool fused) {
    W.zero_grad(true);
    b.zero_grad(true);
    for (Tensor& x : xs) x.zero_grad(true);
    Tape tape;
    const Tensor y = fused ? affine_steps(W, xs, b) : affine(W, concat(xs, 1), b);
    std::vector<double> all = y.to_vector();
    sum(y * w_out).backward();
    for (const Tensor* p : {&W, &b, &xs[0], &xs[2], &xs[3]}) {
      const std::vector<double> g = p->grad().to_vector();
      all.insert(all.end(), g.begin(), g.end());
    }
    CHECK(xs[1].grad().shape() == Shape{4, 0});
    return all;
  };
  CHECK(worst(run(true), run(false), 1e-12, 1e-12) <= 1);
}

TEST_CASE("hostile: affine_seq refuses wrong ranks, features, dtypes and biases, and takes zero steps or batch") {
  Generator gen(6);
  const Tensor W = random({3, 4}, gen), b = random({3}, gen);
  CHECK(contains(message_of<ShapeError>([&] { (void)affine_seq(W, random({4, 2}, gen), b); }), "affine_seq"));
  CHECK(contains(message_of<ShapeError>([&] { (void)affine_seq(W, random({2, 5, 2}, gen), b); }), "(2, 5, 2)"));
  CHECK(contains(message_of<ShapeError>([&] {
                   (void)affine_seq(random({3}, gen), random({2, 4, 2}, gen), b);
                 }),
                 "affine_seq"));
  CHECK(contains(message_of<ShapeError>([&] {
                   (void)affine_seq(W, random({2, 4, 2}, gen), random({2}, gen));
                 }),
                 "affine_seq"));
  CHECK(contains(message_of<DtypeError>([&] {
                   (void)affine_seq(W, random({2, 4, 2}, gen, Dtype::f64), b);
                 }),
                 "affine_seq"));
  CHECK(contains(message_of<DtypeError>([&] {
                   (void)affine_seq(W, random({2, 4, 2}, gen), random({3}, gen, Dtype::f64));
                 }),
                 "affine_seq"));
  CHECK_THROWS_AS((void)affine_seq(W, Tensor(), b), TapeError);
  // Zero steps or zero batch: an empty (rows, 0) result, and empty gradients (as matmul of empties).
  Tensor Wg = random({3, 4}, gen).set_requires_grad(), bg = random({3}, gen).set_requires_grad();
  for (const Shape& s : {Shape{0, 4, 2}, Shape{2, 4, 0}}) {
    CAPTURE(s.str());
    Tape tape;
    Tensor x = random(s, gen).set_requires_grad();
    const Tensor y = affine_seq(Wg, x, bg);
    CHECK(y.shape() == Shape{3, 0});
    sum(y).backward();
    for (double v : Wg.grad().to_vector()) CHECK(v == 0.0);
    for (double v : bg.grad().to_vector()) CHECK(v == 0.0);
    CHECK(x.grad().shape() == s);
    Wg.zero_grad(true);
    bg.zero_grad(true);
  }
}

TEST_CASE("hostile: affine_seq equals affine of the permuted sequence at 1, 2 and 3 threads (float64 and float32)") {
  ThreadCountGuard threads;
  // Big enough for the steps to split across the pool (split_grain) and the products to be past the
  // tiny cut, odd sizes throughout.
  for (Dtype dt : {Dtype::f64, Dtype::f32}) {
    Generator gen(7);
    const std::size_t T = 37, k = 45, B = 29, m = 53;
    Tensor W = random({m, k}, gen, dt).set_requires_grad(), b = random({m}, gen, dt).set_requires_grad();
    Tensor x = random({T, k, B}, gen, dt).set_requires_grad();
    const Tensor w_out = random({m, T * B}, gen, dt);
    auto run = [&](bool fused, int n) {
      set_num_threads(n);
      for (Tensor* p : {&W, &b, &x}) p->zero_grad(true);
      Tape tape;
      const Tensor y = fused ? affine_seq(W, x, b) : affine(W, reshape(permute(x, {1, 0, 2}), {k, T * B}), b);
      std::vector<double> all = y.to_vector();
      sum(y * w_out).backward();
      for (Tensor* p : {&W, &b, &x}) {
        const std::vector<double> g = p->grad().to_vector();
        all.insert(all.end(), g.begin(), g.end());
      }
      return all;
    };
    const double tol = dt == Dtype::f64 ? 1e-12 : 2e-5;
    const std::vector<double> slow = run(false, 1);
    for (int n : {1, 2, 3}) {
      CAPTURE(n);
      const std::string dtype = dtype_name(dt);
      CAPTURE(dtype);
      CHECK(worst(run(true, n), slow, tol, tol) <= 1);
    }
  }
}

// ---- Dense::forward_sequence and TimeDistributed(Dense) ----

TEST_CASE("hostile: Dense::forward_sequence refuses wrong ranks, features, dtypes and batch 0, naming the layer") {
  Generator gen(8);
  auto shared = std::make_shared<Dense>(4, 3, "tanh", true, Dtype::f32, gen);
  Dense& d = *shared;
  CHECK(contains(message_of<ShapeError>([&] {
                   (void)d.forward_sequence(random({4, 2}, gen));
                 }),
                 "Dense(4 => 3, tanh)"));
  CHECK(contains(message_of<ShapeError>([&] { (void)d.forward_sequence(random({2, 5, 2}, gen)); }), "(2, 5, 2)"));
  CHECK(contains(message_of<ShapeError>([&] { (void)d.forward_sequence(random({2, 4, 0}, gen)); }), "batch 0"));
  CHECK(contains(message_of<DtypeError>([&] {
                   (void)d.forward_sequence(random({2, 4, 2}, gen, Dtype::f64));
                 }),
                 "Dense(4 => 3, tanh)"));
  CHECK_THROWS_AS((void)d.forward_sequence(Tensor()), TapeError);
  // Zero steps: refused as TimeDistributed and run_sequence refuse an empty sequence.
  CHECK(contains(message_of<ValueError>([&] {
                   (void)d.forward_sequence(random({0, 4, 2}, gen));
                 }),
                 "Dense(4 => 3, tanh)"));
  TimeDistributed td(shared);
  CHECK(contains(message_of<ValueError>([&] { (void)td(random({0, 4, 2}, gen)); }), "TimeDistributed"));
  CHECK(contains(message_of<ShapeError>([&] { (void)td(random({2, 5, 2}, gen)); }), "Dense(4 => 3, tanh)"));
  CHECK(contains(message_of<DtypeError>([&] { (void)td(random({2, 4, 2}, gen, Dtype::f64)); }), "Dense(4 => 3, tanh)"));
}

TEST_CASE(
    "hostile: TimeDistributed(Dense) equals the Dense at every step, values and gradients, float64, threads 1 to 3") {
  ThreadCountGuard threads;
  Generator gen(9);
  const Dtype f64 = Dtype::f64;
  auto dense = std::make_shared<Dense>(7, 5, "sigmoid", true, f64, gen);
  TimeDistributed td(dense);
  const std::size_t T = 6, B = 4;
  Tensor x = random({T, 7, B}, gen, f64).set_requires_grad();
  const Tensor w_out = random({T, 5, B}, gen, f64);
  auto run = [&](bool whole, int n) {
    set_num_threads(n);
    dense->weight.zero_grad(true);
    dense->bias.zero_grad(true);
    x.zero_grad(true);
    Tape tape;
    Tensor y;
    if (whole) {
      y = td(x);
    } else {
      std::vector<Tensor> ys;
      for (const Tensor& xt : split_steps(x)) ys.push_back((*dense)(xt));
      y = stack(ys, 0);
    }
    std::vector<double> all = y.to_vector();
    sum(y * w_out).backward();
    for (const Tensor* p : {&dense->weight, &dense->bias, &x}) {
      const std::vector<double> g = p->grad().to_vector();
      all.insert(all.end(), g.begin(), g.end());
    }
    return all;
  };
  const std::vector<double> slow = run(false, 1);
  for (int n : {1, 2, 3}) {
    CAPTURE(n);
    CHECK(worst(run(true, n), slow, 1e-12, 1e-12) <= 1);
  }
}

// ---- the cells' project_input and step_projected, called directly ----

TEST_CASE("hostile: step_projected refuses a window past the projection, overflowing first included, naming the cell") {
  Generator gen(10);
  LSTMCell lstm(3, 4, {}, gen);
  RNNCell rnn(3, 4, "tanh", {}, gen);
  const std::size_t B = 2;
  const Tensor x = random({3, 2 * B}, gen);  // two steps' inputs side by side
  const Tensor pl = lstm.project_input({x}), pr = rnn.project_input({x});
  REQUIRE(pl.shape() == Shape{16, 2 * B});
  REQUIRE(pr.shape() == Shape{4, 2 * B});
  const State sl = lstm.initial_state(B), sr = rnn.initial_state(B);
  CHECK(lstm.step_projected(pl, B, sl).first.shape() == Shape{4, B});  // the second step's block: inside
  for (std::size_t first : {std::size_t{3}, std::size_t{4}, kHuge - 1, kHuge}) {
    CAPTURE(first);
    CHECK(contains(message_of<ShapeError>([&] { (void)lstm.step_projected(pl, first, sl); }), "LSTMCell(3 => 4)"));
    CHECK(contains(message_of<ShapeError>([&] { (void)rnn.step_projected(pr, first, sr); }), "RNNCell(3 => 4, tanh)"));
  }
}

TEST_CASE("hostile: step_projected refuses wrong projections and states, naming the cell and the shapes") {
  Generator gen(11);
  LSTMCell lstm(3, 4, {}, gen);
  RNNCell rnn(3, 4, "tanh", {}, gen);
  const State sl = lstm.initial_state(2), sr = rnn.initial_state(2);
  const std::string L = "LSTMCell(3 => 4)", R = "RNNCell(3 => 4, tanh)";
  // Rows: an RNN's projection to the LSTM, a wrong rank, a vector with first ≠ 0, a state's batch wider.
  CHECK(contains(message_of<ShapeError>([&] { (void)lstm.step_projected(random({4, 2}, gen), 0, sl); }), L));
  CHECK(contains(message_of<ShapeError>([&] { (void)lstm.step_projected(random({16, 2, 1}, gen), 0, sl); }), L));
  CHECK(contains(message_of<ShapeError>([&] { (void)rnn.step_projected(random({4}, gen), 1, rnn.initial_state(0)); }),
                 R));
  CHECK(contains(message_of<ShapeError>([&] { (void)rnn.step_projected(random({4, 1}, gen), 0, sr); }), R));
  // Dtypes of the projection and of the state.
  CHECK(contains(message_of<DtypeError>([&] { (void)rnn.step_projected(random({4, 2}, gen, Dtype::f64), 0, sr); }), R));
  CHECK(contains(message_of<DtypeError>([&] {
                   (void)rnn.step_projected(random({4, 2}, gen), 0, {random({4, 2}, gen, Dtype::f64)});
                 }),
                 R));
  // The state: none, too many, of the wrong shape, undefined.
  CHECK(contains(message_of<ValueError>([&] { (void)lstm.step_projected(random({16, 2}, gen), 0, {}); }), L));
  CHECK(contains(message_of<ValueError>([&] { (void)rnn.step_projected(random({4, 2}, gen), 0, {sr[0], sr[0]}); }), R));
  CHECK(contains(message_of<ShapeError>([&] {
                   (void)lstm.step_projected(random({16, 2}, gen), 0, {sl[0], random({4, 3}, gen)});
                 }),
                 L));
  CHECK(contains(message_of<ShapeError>([&] {
                   (void)rnn.step_projected(random({4, 2}, gen), 0, {random({1, 2}, gen)});
                 }),
                 R));
  CHECK_THROWS_AS((void)rnn.step_projected(random({4, 2}, gen), 0, {Tensor()}), TapeError);
  CHECK_THROWS_AS((void)lstm.step_projected(random({16, 2}, gen), 0, {sl[0], Tensor()}), TapeError);
  CHECK_THROWS_AS((void)rnn.step_projected(Tensor(), 0, sr), TapeError);
  // A cell that does not split its step says so.
  GRUCell gru(3, 4, {}, gen);
  CHECK(contains(message_of<ValueError>([&] { (void)gru.project_input({random({3, 2}, gen)}); }), "GRUCell"));
  CHECK(contains(message_of<ValueError>([&] {
                   (void)gru.step_projected(random({12, 2}, gen), 0, gru.initial_state(2));
                 }),
                 "GRUCell"));
}

TEST_CASE("hostile: project_input refuses no steps, mixed dtypes, wrong features, and mixed batches give per-step blocks") {
  Generator gen(12);
  LSTMCell lstm(3, 4, {}, gen);
  CHECK_THROWS_AS((void)lstm.project_input({}), ValueError);
  CHECK_THROWS_AS((void)lstm.project_input({random({3, 2}, gen), random({3, 2}, gen, Dtype::f64)}), DtypeError);
  CHECK_THROWS_AS((void)lstm.project_input({random({3, 2}, gen), random({4, 2}, gen)}), ShapeError);
  CHECK_THROWS_AS((void)lstm.project_input({random({3, 2}, gen), Tensor()}), TapeError);
  // Mixed batch sizes: the blocks side by side, each the step's own projection.
  NoGradGuard no_grad;
  const Tensor a = random({3, 2}, gen), b = random({3, 5}, gen);
  const Tensor p = lstm.project_input({a, b});
  REQUIRE(p.shape() == Shape{16, 7});
  CHECK(worst(slice(p, 1, 2, 7).to_vector(), affine(lstm.weight_ih, b, lstm.bias_ih).to_vector(), 1e-6, 1e-6) <= 1);
  // A step from the second block (batch 5) equals step() on b.
  const State s = {random({4, 5}, gen), random({4, 5}, gen)};
  const auto [y1, n1] = lstm.step_projected(p, 2, s);
  const auto [y2, n2] = lstm.step(b, s);
  CHECK(worst(y1.to_vector(), y2.to_vector(), 1e-6, 1e-6) <= 1);
  CHECK(worst(n1[1].to_vector(), n2[1].to_vector(), 1e-6, 1e-6) <= 1);
}

TEST_CASE(
    "hostile: step_projected on a projection that takes a gradient equals step(), values and gradients (float64)") {
  Generator gen(13);
  for (bool lstm_cell : {true, false}) {
    CAPTURE(lstm_cell);
    std::shared_ptr<Cell> cell =
        lstm_cell
            ? std::shared_ptr<Cell>(std::make_shared<LSTMCell>(3, 4, LSTMOptions{.dtype = Dtype::f64}, gen))
            : std::shared_ptr<Cell>(std::make_shared<RNNCell>(3, 4, "tanh", CellOptions{.dtype = Dtype::f64}, gen));
    const std::size_t B = 3;
    Tensor x0 = random({3, B}, gen, Dtype::f64).set_requires_grad(),
           x1 = random({3, B}, gen, Dtype::f64).set_requires_grad();
    State s0 = cell->initial_state(B);
    for (Tensor& t : s0) t = random(t.shape(), gen, Dtype::f64).set_requires_grad();
    const Tensor w_out = random({4, B}, gen, Dtype::f64);
    auto run = [&](bool projected) {
      for (Tensor& p : cell->parameters()) p.zero_grad(true);
      for (Tensor* t : {&x0, &x1}) t->zero_grad(true);
      for (Tensor& t : s0) t.zero_grad(true);
      Tape tape;
      Tensor y;
      if (projected) {
        Tensor proj = cell->project_input({x0, x1});
        auto [ya, sa] = cell->step_projected(proj, 0, s0);
        auto [yb, sb] = cell->step_projected(proj, B, sa);
        y = yb + sb.back();
      } else {
        auto [ya, sa] = cell->step(x0, s0);
        auto [yb, sb] = cell->step(x1, sa);
        y = yb + sb.back();
      }
      std::vector<double> all = y.to_vector();
      sum(y * w_out).backward();
      std::vector<Tensor> ps = cell->parameters();
      ps.push_back(x0);
      ps.push_back(x1);
      for (const Tensor& t : s0) ps.push_back(t);
      for (const Tensor& p : ps) {
        const std::vector<double> g = p.grad().to_vector();
        all.insert(all.end(), g.begin(), g.end());
      }
      return all;
    };
    CHECK(worst(run(true), run(false), 1e-12, 1e-12) <= 1);
  }
}

// ---- Recurrent: the hoisted projection, packed weights, threads and the two directions at once ----

namespace {

// Every output, the input's gradient and every parameter's, of one loss over a Recurrent's run.
std::vector<double> recurrent_run(Recurrent& r, Tensor& x, const Tensor& mask, const Tensor& w_out) {
  for (Tensor& p : r.parameters()) p.zero_grad(true);
  x.zero_grad(true);
  Tape tape;
  const Tensor y = mask.defined() ? r(x, mask) : r(x);
  std::vector<double> all = y.to_vector();
  sum(y * w_out).backward();
  for (const Tensor& t : r.parameters()) {
    const std::vector<double> g = t.grad().to_vector();
    all.insert(all.end(), g.begin(), g.end());
  }
  const std::vector<double> gx = x.grad().to_vector();
  all.insert(all.end(), gx.begin(), gx.end());
  return all;
}

}  // namespace

TEST_CASE(
    "hostile: Recurrent's fast paths (hoisted projection, packed weights, 1 to 3 threads, both directions at once) "
    "equal the slow one") {
  ThreadCountGuard threads;
  PackedGuard packed;
  // Hidden 32: W_hh (128, 32) is kPackMinWeight, batch 16 is the packed kernel's narrowest; inputs 32
  // at batch 16 is run_sequence's hoisting threshold (512).
  // (An RNN's W_hh is H × H: hidden 64 for it to reach kPackMinWeight.)
  const std::size_t T = 5, F = 32, B = 16;
  for (Dtype dt : {Dtype::f64, Dtype::f32})
    for (bool lstm : {true, false})
      for (bool bidir : {false, true})
        for (bool masked : {false, true}) {
          const std::string dtype = dtype_name(dt);
          CAPTURE(dtype);
          CAPTURE(lstm);
          CAPTURE(bidir);
          CAPTURE(masked);
          const std::size_t H = lstm ? 32 : 64;
          Generator gen(20);
          const RecurrentOptions ro{.bidirectional = bidir};
          Recurrent r = lstm ? LSTM(F, H, {.dtype = dt}, ro, gen) : RNN(F, H, "tanh", {.dtype = dt}, ro, gen);
          Tensor x = random({T, F, B}, gen, dt).set_requires_grad();
          const Tensor w_out = random({T, H * (bidir ? 2 : 1), B}, gen, dt);
          std::vector<std::size_t> lengths(B, T);
          for (std::size_t b = 0; b < B; b += 3) lengths[b] = 1 + b % T;
          const Tensor mask = masked ? mask_from_lengths(lengths, T, dt) : Tensor();
          auto run = [&](bool hoist, bool pack, int n) {
            HoistFrom h(hoist ? 0 : kHuge);
            set_packed_weights(pack);
            set_num_threads(n);
            const std::uint64_t before = kernels::packed_products();
            std::vector<double> out = recurrent_run(r, x, mask, w_out);
            // The packed kernel did run where it should (else this would compare the slow path to itself).
            if (pack && dt == Dtype::f32 && kernels::packed_kernel_available())
              CHECK(kernels::packed_products() > before);
            if (!pack) CHECK(kernels::packed_products() == before);
            return out;
          };
          const std::vector<double> slow = run(false, false, 1);
          const double tol = dt == Dtype::f64 ? 1e-11 : 1e-4;
          for (bool hoist : {false, true})
            for (bool pack : {false, true})
              for (int n : {1, 2, 3}) {
                CAPTURE(hoist);
                CAPTURE(pack);
                CAPTURE(n);
                CHECK(worst(run(hoist, pack, n), slow, tol, tol) <= 1);
              }
        }
}

TEST_CASE("hostile: a NaN in one column of one step stays in that column, through the hoisted and packed LSTM") {
  ThreadCountGuard threads;
  PackedGuard packed;
  HoistFrom hoist(0);
  set_packed_weights(true);
  const std::size_t T = 4, F = 32, H = 32, B = 16;
  Generator gen(21);
  Recurrent r = LSTM(F, H, {}, {}, gen);
  for (int n : {1, 2}) {
    CAPTURE(n);
    set_num_threads(n);
    NoGradGuard no_grad;
    Tensor x = random({T, F, B}, gen);
    x.data<float>()[(1 * F + 5) * B + 7] = NAN;        // step 1, feature 5, column 7
    x.data<float>()[(2 * F + 0) * B + 11] = INFINITY;  // step 2, feature 0, column 11
    const std::vector<double> y = r(x).to_vector();    // (T, H, B)
    for (std::size_t t = 0; t < T; ++t)
      for (std::size_t i = 0; i < H; ++i)
        for (std::size_t b = 0; b < B; ++b) {
          const double v = y[(t * H + i) * B + b];
          if (b == 7 && t >= 1) {
            CHECK_MESSAGE(std::isnan(v), "t " << t << " row " << i);
          } else if (b != 11) {
            CHECK_MESSAGE(std::isfinite(v), "t " << t << " row " << i << " column " << b);
          }
        }
  }
}

// ---- the thread count ----

TEST_CASE("hostile: set_num_threads refuses 0, negatives and past kMaxThreads, and keeps the count it had") {
  ThreadCountGuard threads;
  set_num_threads(2);
  for (int n : {0, -1, -2, INT_MIN, kMaxThreads + 1, INT_MAX}) {
    CAPTURE(n);
    CHECK(contains(message_of<ValueError>([&] { set_num_threads(n); }), "set_num_threads"));
    CHECK(get_num_threads() == 2);
  }
  // Many more threads than cores: allowed, and a split op still gives the same bits.
  Generator gen(22);
  const Tensor a = random({300000}, gen);
  const std::vector<double> want = tanh(a).to_vector();
  set_num_threads(48);
  CHECK(tanh(a).to_vector() == want);
  set_num_threads(1);
  CHECK(tanh(a).to_vector() == want);
}

TEST_CASE(
    "hostile: set_num_threads from inside a running parallel loop, and from several threads at once while ops run") {
  ThreadCountGuard threads;
  set_num_threads(3);
  // Inside a chunk (on a worker or the caller): the loop still covers its range once, the next one
  // runs on the new count.
  std::vector<std::atomic<int>> hits(100000);
  kernels::parallel_for(hits.size(), 1000, [&](std::size_t a, std::size_t b) {
    if (a == 0) set_num_threads(2);
    for (std::size_t i = a; i < b; ++i) hits[i].fetch_add(1);
  });
  for (std::size_t i = 0; i < hits.size(); ++i) REQUIRE(hits[i].load() == 1);
  CHECK(get_num_threads() == 2);
  Generator gen(23);
  const Tensor a = random({200000}, gen), W = random({300, 200}, gen, Dtype::f64),
               x = random({200, 300}, gen, Dtype::f64);
  const std::vector<double> want = sigmoid(a).to_vector(), want_mm = matmul(W, x).to_vector();
  // Three threads change the count while two others run split ops: every result right, no hang.
  std::atomic<bool> stop{false};
  std::atomic<int> wrong{0};
  std::vector<std::thread> setters, users;
  for (int s = 0; s < 3; ++s)
    setters.emplace_back([&, s] {
      for (int i = 0; !stop.load(); ++i) set_num_threads(1 + (i + s) % 4);
    });
  for (int u = 0; u < 2; ++u)
    users.emplace_back([&] {
      for (int i = 0; i < 30; ++i) {
        if (sigmoid(a).to_vector() != want) wrong.fetch_add(1);
        if (worst(matmul(W, x).to_vector(), want_mm, 1e-12, 1e-12) > 1) wrong.fetch_add(1);
      }
    });
  for (std::thread& t : users) t.join();
  stop = true;
  for (std::thread& t : setters) t.join();
  CHECK(wrong.load() == 0);
}

TEST_CASE("hostile: set_num_threads during a backward (a gradient-ready hook) leaves the gradients as they were") {
  ThreadCountGuard threads;
  HoistFrom hoist(0);
  Generator gen(24);
  Recurrent r = LSTM(32, 32, {.dtype = Dtype::f64}, {.bidirectional = true}, gen);
  Tensor x = random({4, 32, 16}, gen, Dtype::f64).set_requires_grad();
  const Tensor w_out = random({4, 64, 16}, gen, Dtype::f64);
  set_num_threads(2);
  const std::vector<double> want = recurrent_run(r, x, Tensor(), w_out);
  int calls = 0;
  {
    auto ready = on_grad_ready([&](const Tensor&) { set_num_threads(1 + (calls++ % 3)); });
    set_num_threads(2);
    CHECK(worst(recurrent_run(r, x, Tensor(), w_out), want, 1e-11, 1e-11) <= 1);
  }
  CHECK(calls > 0);
}

TEST_CASE("hostile: several user threads, each with its own tape and model, train at once with the pool's threads") {
  ThreadCountGuard threads;
  set_num_threads(2);
  HoistFrom hoist(0);
  auto one = [](std::vector<double>* out) {
    Generator gen(25);
    Recurrent r = LSTM(32, 32, {.dtype = Dtype::f64}, {}, gen);
    Tensor x = random({4, 32, 16}, gen, Dtype::f64).set_requires_grad();
    const Tensor w_out = random({4, 32, 16}, gen, Dtype::f64);
    *out = recurrent_run(r, x, Tensor(), w_out);
  };
  std::vector<double> want;
  one(&want);
  std::vector<std::vector<double>> got(3);
  std::vector<std::thread> ts;
  for (auto& g : got) ts.emplace_back(one, &g);
  for (auto& t : ts) t.join();
  for (const auto& g : got) CHECK(worst(g, want, 1e-11, 1e-11) <= 1);
  // One model, inference from several threads at once (documented), the same outputs.
  Generator gen(26);
  Recurrent shared = LSTM(32, 32, {}, {.bidirectional = true}, gen);
  const Tensor x = random({4, 32, 16}, gen);
  std::vector<double> ref;
  {
    NoGradGuard no_grad;
    ref = shared(x).to_vector();
  }
  std::atomic<int> wrong{0};
  ts.clear();
  for (int i = 0; i < 3; ++i)
    ts.emplace_back([&] {
      NoGradGuard no_grad;
      for (int k = 0; k < 5; ++k)
        if (worst(shared(x).to_vector(), ref, 1e-5, 1e-5) > 1) wrong.fetch_add(1);
    });
  for (auto& t : ts) t.join();
  CHECK(wrong.load() == 0);
}

// ---- non-finite values through the vector kernels, sums and Adam ----

TEST_CASE(
    "hostile: the vector tanh, sigmoid and exp (and their gradients) give the C library's specials in every lane, "
    "split or not") {
  ThreadCountGuard threads;
  const double inf = INFINITY, nan = NAN;
  // 88.4–88.72 (float32) and 709.44–709.78 (float64): e^x finite, past xsimd's own exp's limit; below
  // −87.4 and −708.4, subnormal results (float32's may still flush: see `floor` below).
  const double special[] = {nan,  inf,    -inf,  0.0,   -0.0,   1e-30,  88.3,   -88.7, 89.0,  -104.0, 709.4,
                            88.5, 88.72, -88.5, 709.5, 709.78, -709.5, -740.0, -746.0, 1e300, -1e300};
  for (Dtype dt : {Dtype::f32, Dtype::f64})
    for (std::size_t n : {std::size_t{37}, std::size_t{70001}}) {  // one loop, and one split across the pool
      const std::string dtype = dtype_name(dt);
      CAPTURE(dtype);
      CAPTURE(n);
      std::vector<double> v(n);
      for (std::size_t i = 0; i < n; ++i) v[i] = special[(i * 7 + i / 16) % std::size(special)];  // every lane
      for (int t : {1, 3}) {
        set_num_threads(t);
        Tensor x = Tensor::from_vector(v, {n}, dt).set_requires_grad();
        const std::vector<double> xs = x.to_vector();  // as stored (float32 rounds, overflows to inf)
        Tape tape;
        const Tensor th = tanh(x), sg = sigmoid(x), ex = exp(x);
        const std::vector<double> a = th.to_vector(), s = sg.to_vector(), e = ex.to_vector();
        sum(th + sg).backward();
        const std::vector<double> g = x.grad().to_vector();
        std::size_t wrong = 0;
        auto same = [&](double got, double want) {
          // float32 results compared with the double formula rounded to float32; tiny relative slack.
          if (dt == Dtype::f32) want = static_cast<float>(want);
          if (std::isnan(want)) return std::isnan(got);
          if (std::isinf(want) || want == 0) return got == want;
          // (float32 results under its smallest normal number may flush to zero.)
          const double floor = dt == Dtype::f32 ? std::numeric_limits<float>::min() : 0.0;
          return std::abs(got - want) <= 1e-6 * std::abs(want) + floor;
        };
        for (std::size_t i = 0; i < n; ++i) {
          const double xi = xs[i], sig = 1.0 / (1.0 + std::exp(-xi)), tn = std::tanh(xi);
          double ex_want = std::exp(xi);
          if (dt == Dtype::f32 && xi > 88.8) ex_want = inf;
          const double grad_want = std::isnan(xi) ? nan : (1 - tn * tn) + sig * (1 - sig);
          if (!same(a[i], tn) || !same(s[i], sig) || !same(e[i], ex_want) || !same(g[i], grad_want)) {
            if (wrong++ < 5)
              MESSAGE("x " << xi << ": tanh " << a[i] << ", sigmoid " << s[i] << ", exp " << e[i] << ", grad " << g[i]);
          }
        }
        CHECK(wrong == 0);
      }
    }
}

TEST_CASE("hostile: sums over axes and index_add with repeats give NaN and inf where they belong, at 1 to 3 threads") {
  ThreadCountGuard threads;
  Generator gen(30);
  const std::size_t R = 301, C = 257;
  Tensor x = random({R, C}, gen, Dtype::f64);
  x.data<double>()[5 * C + 7] = NAN;
  x.data<double>()[9 * C + 8] = INFINITY;
  x.data<double>()[10 * C + 8] = -INFINITY;  // column 8: inf + −inf
  x.data<double>()[11 * C + 9] = INFINITY;   // column 9: inf
  Indices ids;
  for (std::size_t i = 0; i < 2000; ++i) ids.push_back(static_cast<std::int64_t>((i * 37) % 13));  // heavy repeats
  const Tensor g = random({ids.size(), C}, gen, Dtype::f64);
  std::vector<double> want_add(13 * C, 0.0);
  {
    const std::vector<double> gv = g.to_vector();
    for (std::size_t j = 0; j < ids.size(); ++j)
      for (std::size_t c = 0; c < C; ++c) want_add[static_cast<std::size_t>(ids[j]) * C + c] += gv[j * C + c];
  }
  for (int t : {1, 2, 3}) {
    CAPTURE(t);
    set_num_threads(t);
    const std::vector<double> cols = sum(x, {0}).to_vector(), rows = sum(x, {1}).to_vector();
    CHECK(std::isnan(cols[7]));
    CHECK(std::isnan(cols[8]));
    CHECK(cols[9] == INFINITY);
    CHECK(std::isfinite(cols[10]));
    CHECK(std::isnan(rows[5]));
    CHECK(rows[9] == INFINITY);
    CHECK(rows[10] == -INFINITY);
    CHECK(std::isfinite(rows[12]));
    CHECK(std::isnan(sum(x).item()));
    CHECK(worst(index_add(g, {13, C}, 0, ids).to_vector(), want_add, 1e-12, 1e-12) <= 1);
  }
  // Out of range, negative and huge indices, and an axis past the rank: refused, naming the op.
  for (std::int64_t bad : {std::int64_t{R}, std::int64_t{-1}, std::numeric_limits<std::int64_t>::min(),
                           std::numeric_limits<std::int64_t>::max()}) {
    CAPTURE(bad);
    CHECK(contains(message_of<ValueError>([&] { (void)index_select(x, 0, {0, bad}); }), "index_select"));
    CHECK(contains(message_of<ValueError>([&] {
                     (void)index_add(random({2, C}, gen, Dtype::f64), {R, C}, 0, {0, bad});
                   }),
                   "index_add"));
  }
  CHECK(index_select(x, 1, {}).shape() == Shape{R, 0});
  CHECK_THROWS_AS((void)index_select(x, 2, {0}), ShapeError);
  CHECK_THROWS_AS((void)index_select(Tensor(), 0, {0}), TapeError);
}

TEST_CASE("hostile: Adam's vector update equals its formula elementwise on odd sizes, NaN and inf gradients included") {
  ThreadCountGuard threads;
  for (Dtype dt : {Dtype::f32, Dtype::f64})
    for (bool amsgrad : {false, true})
      for (int t : {1, 3}) {
        const std::string dtype = dtype_name(dt);
        CAPTURE(dtype);
        CAPTURE(amsgrad);
        CAPTURE(t);
        set_num_threads(t);
        Generator gen(31);
        const std::size_t n = 40009;  // odd: every vector tail, and split across the pool
        Tensor p = random({n}, gen, dt).set_requires_grad();
        const double lr = 1e-2, b1 = 0.9, b2 = 0.99, eps = 1e-8, wd = 0.1;
        Adam opt({p}, {.lr = lr, .betas = {b1, b2}, .eps = eps, .weight_decay = wd, .amsgrad = amsgrad});
        std::vector<double> P = p.to_vector(), m(n, 0.0), v(n, 0.0), vmax(n, 0.0);
        for (int step = 1; step <= 3; ++step) {
          Tensor g = random({n}, gen, dt);
          std::vector<double> gv = g.to_vector();
          if (step == 2) {
            gv[3] = NAN;
            gv[n - 2] = INFINITY;
            g = Tensor::from_vector(gv, {n}, dt);
            gv = g.to_vector();
          }
          p.set_grad(g);
          opt.step();
          for (std::size_t i = 0; i < n; ++i) {
            const double gi = gv[i] + wd * P[i];
            m[i] = b1 * m[i] + (1 - b1) * gi;
            v[i] = b2 * v[i] + (1 - b2) * gi * gi;
            vmax[i] = std::max(vmax[i], v[i]);
            if (std::isnan(v[i])) vmax[i] = NAN;
            const double mh = m[i] / (1 - std::pow(b1, step)),
                         vh = (amsgrad ? vmax[i] : v[i]) / (1 - std::pow(b2, step));
            P[i] -= lr * mh / (std::sqrt(vh) + eps);
          }
        }
        const double tol = dt == Dtype::f32 ? 1e-5 : 1e-12;
        CHECK(worst(p.to_vector(), P, tol, tol) <= 1);
        CHECK(std::isnan(p.to_vector()[3]));
        CHECK(std::isnan(p.to_vector()[n - 2]));
      }
}

// ---- run_sequence's hoisted projection against bad steps ----

TEST_CASE(
    "hostile: a sequence with a step of another dtype is refused naming the cell, hoisted or not, at 1 and 2 threads") {
  ThreadCountGuard threads;
  Generator gen(40);
  for (bool hoist : {false, true})
    for (bool bidir : {false, true})
      for (int t : {1, 2}) {
        CAPTURE(hoist);
        CAPTURE(bidir);
        CAPTURE(t);
        set_num_threads(t);
        HoistFrom h(hoist ? 0 : kHuge);
        Recurrent r = LSTM(4, 8, {}, {.bidirectional = bidir}, gen);
        std::vector<Tensor> steps = {random({4, 3}, gen), random({4, 3}, gen, Dtype::f64), random({4, 3}, gen)};
        CHECK(contains(message_of<DtypeError>([&] { (void)r(steps); }), "LSTMCell(4 => 8)"));
        steps[1] = random({4, 3}, gen);
        std::vector<Tensor> mixed = steps;
        mixed[2] = random({4, 2}, gen);  // another batch
        CHECK(contains(message_of<ShapeError>([&] { (void)r(mixed); }), "step 2"));
        mixed[2] = Tensor();
        CHECK_THROWS_AS((void)r(mixed), TapeError);
        CHECK(r(steps).shape() == Shape{3, bidir ? 16u : 8u, 3});  // and the layer goes on
      }
}

// ---- blas_info ----

TEST_CASE("hostile: blas_info reports the thread count and packed setting as set, from several threads at once") {
  ThreadCountGuard threads;
  PackedGuard packed;
  set_num_threads(3);
  set_packed_weights(false);
  std::atomic<int> wrong{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i)
    ts.emplace_back([&] {
      for (int k = 0; k < 50; ++k) {
        const BlasInfo info = blas_info();
        if (info.threads != 3 || info.packed || info.library != "OpenBLAS" || !contains(info.str(), "threads=3") ||
            (info.generic && info.narrow))
          wrong.fetch_add(1);
      }
    });
  for (auto& t : ts) t.join();
  CHECK(wrong.load() == 0);
  set_packed_weights(true);
  CHECK(blas_info().packed == kernels::packed_kernel_available());
  // The advice comes exactly when the kernels are generic or narrow, and names the fix.
  const BlasInfo info = blas_info();
  CHECK((info.generic || info.narrow) == !info.suggested_coretype.empty());
  if (info.generic || info.narrow) CHECK(contains(info.str(), "fix=OPENBLAS_CORETYPE=" + info.suggested_coretype));
}

// ---- packed products on a weight that is a view ----

TEST_CASE("hostile: a packed weight that is a view of a bigger tensor (rows of it, or reshaped) multiplies as its copy") {
  PackedGuard packed;
  set_packed_weights(true);
  Generator gen(60);
  const Tensor big = random({200, 64}, gen), x = random({64, 40}, gen);
  // Rows 50..150 of big: a view at an offset into its storage; and big reshaped to (100, 128) (a view too).
  const Tensor rows = slice(big, 0, 50, 150), wide = reshape(big, {100, 128}), x2 = random({128, 40}, gen);
  REQUIRE(rows.is_view());
  REQUIRE(wide.is_view());
  for (const auto& [w, in] : {std::pair{rows, x}, std::pair{wide, x2}}) {
    const std::vector<double> want = matmul(w.clone(), in).to_vector();  // outside a scope: OpenBLAS
    const std::uint64_t before = kernels::packed_products();
    std::vector<double> got;
    {
      const kernels::PackScope scope;
      for (int i = 0; i < 3; ++i) got = matmul(w, in).to_vector();  // packed from the second use
    }
    if (kernels::packed_kernel_available()) CHECK(kernels::packed_products() - before == 2);
    CHECK(worst(got, want, 1e-5, 1e-5) <= 1);
  }
}
