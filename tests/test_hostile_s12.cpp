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
#include <string>
#include <thread>
#include <vector>

#include <rewind.hpp>

#include "kernels/packed.hpp"
#include "kernels/pool.hpp"
#include "support.hpp"

using namespace rwd;

namespace {

constexpr std::size_t kHuge = std::numeric_limits<std::size_t>::max();

struct ThreadCountGuard {
  int before = get_num_threads();
  ~ThreadCountGuard() { set_num_threads(before); }
};

struct PackedGuard {
  bool before = packed_weights();
  ~PackedGuard() { set_packed_weights(before); }
};

// Hoists run_sequence's input projection from `n` inputs × batch on, for one scope.
struct HoistFrom {
  std::size_t old;
  explicit HoistFrom(std::size_t n) : old(detail::set_projection_min_inputs(n)) {}
  ~HoistFrom() { detail::set_projection_min_inputs(old); }
};

Tensor random(const Shape& s, Generator& gen, Dtype dtype = Dtype::f32) { return Tensor::uniform(s, -1, 1, gen, dtype); }

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
  CHECK(contains(message_of<ShapeError>([&] { (void)affine(W, random({4}, gen), b, random({3, 10}, gen), 1); }),
                 "affine"));
  CHECK(contains(message_of<DtypeError>([&] { (void)affine(W, x, b, random({3, 10}, gen, Dtype::f64), 1); }),
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
    const Tensor y = fused ? affine(W, x, b, base, 6)
                           : matmul(W, x) + reshape(b, {5, 1}) + slice(base, 1, 6, 9);
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
  xn.data<double>()[1 * 3 + 2] = NAN;                          // x[1, 2]
  bn.data<double>()[3 * 11 + 7] = INFINITY;                     // base[3, 7]: output (3, 1)
  const std::vector<double> y = affine(W, xn, b, bn, 6).to_vector();
  for (std::size_t i = 0; i < 5; ++i)
    for (std::size_t j = 0; j < 3; ++j) {
      CAPTURE(i);
      CAPTURE(j);
      const double v = y[i * 3 + j];
      if (j == 2) CHECK(std::isnan(v));
      else if (i == 3 && j == 1) CHECK(v == INFINITY);
      else CHECK(std::isfinite(v));
    }
}

// ---- affine_steps and affine_seq ----

TEST_CASE("hostile: affine_steps refuses no blocks, wrong ranks, rows and dtypes, and undefined blocks") {
  Generator gen(4);
  const Tensor W = random({3, 4}, gen), b = random({3}, gen);
  CHECK(contains(message_of<ValueError>([&] { (void)affine_steps(W, {}, b); }), "affine_steps"));
  CHECK(contains(message_of<ShapeError>([&] { (void)affine_steps(W, {random({4, 2}, gen), random({5, 2}, gen)}, b); }),
                 "(5, 2)"));
  CHECK(contains(message_of<ShapeError>([&] { (void)affine_steps(W, {random({4}, gen)}, b); }), "affine_steps"));
  CHECK(contains(message_of<ShapeError>([&] { (void)affine_steps(random({3, 4, 1}, gen), {random({4, 2}, gen)}, b); }),
                 "affine_steps"));
  CHECK(contains(message_of<DtypeError>([&] {
                   (void)affine_steps(W, {random({4, 2}, gen), random({4, 2}, gen, Dtype::f64)}, b);
                 }),
                 "affine_steps"));
  CHECK(contains(message_of<DtypeError>([&] { (void)affine_steps(W, {random({4, 2}, gen)}, random({3}, gen, Dtype::f64)); }),
                 "affine_steps"));
  CHECK(contains(message_of<ShapeError>([&] { (void)affine_steps(W, {random({4, 2}, gen)}, random({4}, gen)); }),
                 "affine_steps"));
  CHECK_THROWS_AS((void)affine_steps(W, {random({4, 2}, gen), Tensor()}, b), TapeError);
  CHECK_THROWS_AS((void)affine_steps(Tensor(), {random({4, 2}, gen)}, b), TapeError);
}

TEST_CASE("hostile: affine_steps of mixed batch sizes, a zero-width block among them, equals affine of the concatenation") {
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
  CHECK(contains(message_of<ShapeError>([&] { (void)affine_seq(random({3}, gen), random({2, 4, 2}, gen), b); }),
                 "affine_seq"));
  CHECK(contains(message_of<ShapeError>([&] { (void)affine_seq(W, random({2, 4, 2}, gen), random({2}, gen)); }),
                 "affine_seq"));
  CHECK(contains(message_of<DtypeError>([&] { (void)affine_seq(W, random({2, 4, 2}, gen, Dtype::f64), b); }),
                 "affine_seq"));
  CHECK(contains(message_of<DtypeError>([&] { (void)affine_seq(W, random({2, 4, 2}, gen), random({3}, gen, Dtype::f64)); }),
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
      CAPTURE(dtype_name(dt));
      CHECK(worst(run(true, n), slow, tol, tol) <= 1);
    }
  }
}

// ---- Dense::forward_sequence and TimeDistributed(Dense) ----

TEST_CASE("hostile: Dense::forward_sequence refuses wrong ranks, features, dtypes and batch 0, naming the layer") {
  Generator gen(8);
  auto shared = std::make_shared<Dense>(4, 3, "tanh", true, Dtype::f32, gen);
  Dense& d = *shared;
  CHECK(contains(message_of<ShapeError>([&] { (void)d.forward_sequence(random({4, 2}, gen)); }), "Dense(4 => 3, tanh)"));
  CHECK(contains(message_of<ShapeError>([&] { (void)d.forward_sequence(random({2, 5, 2}, gen)); }), "(2, 5, 2)"));
  CHECK(contains(message_of<ShapeError>([&] { (void)d.forward_sequence(random({2, 4, 0}, gen)); }), "batch 0"));
  CHECK(contains(message_of<DtypeError>([&] { (void)d.forward_sequence(random({2, 4, 2}, gen, Dtype::f64)); }),
                 "Dense(4 => 3, tanh)"));
  CHECK_THROWS_AS((void)d.forward_sequence(Tensor()), TapeError);
  // Zero steps: refused as TimeDistributed and run_sequence refuse an empty sequence.
  CHECK(contains(message_of<ValueError>([&] { (void)d.forward_sequence(random({0, 4, 2}, gen)); }), "Dense(4 => 3, tanh)"));
  TimeDistributed td(shared);
  CHECK(contains(message_of<ValueError>([&] { (void)td(random({0, 4, 2}, gen)); }), "TimeDistributed"));
  CHECK(contains(message_of<ShapeError>([&] { (void)td(random({2, 5, 2}, gen)); }), "Dense(4 => 3, tanh)"));
  CHECK(contains(message_of<DtypeError>([&] { (void)td(random({2, 4, 2}, gen, Dtype::f64)); }), "Dense(4 => 3, tanh)"));
}

TEST_CASE("hostile: TimeDistributed(Dense) equals the Dense at every step, values and gradients, float64, threads 1 to 3") {
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
  CHECK(contains(message_of<ShapeError>([&] { (void)rnn.step_projected(random({4}, gen), 1, rnn.initial_state(0)); }), R));
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
  CHECK(contains(message_of<ShapeError>([&] { (void)lstm.step_projected(random({16, 2}, gen), 0, {sl[0], random({4, 3}, gen)}); }),
                 L));
  CHECK(contains(message_of<ShapeError>([&] { (void)rnn.step_projected(random({4, 2}, gen), 0, {random({1, 2}, gen)}); }), R));
  CHECK_THROWS_AS((void)rnn.step_projected(random({4, 2}, gen), 0, {Tensor()}), TapeError);
  CHECK_THROWS_AS((void)lstm.step_projected(random({16, 2}, gen), 0, {sl[0], Tensor()}), TapeError);
  CHECK_THROWS_AS((void)rnn.step_projected(Tensor(), 0, sr), TapeError);
  // A cell that does not split its step says so.
  GRUCell gru(3, 4, {}, gen);
  CHECK(contains(message_of<ValueError>([&] { (void)gru.project_input({random({3, 2}, gen)}); }), "GRUCell"));
  CHECK(contains(message_of<ValueError>([&] { (void)gru.step_projected(random({12, 2}, gen), 0, gru.initial_state(2)); }),
                 "GRUCell"));
}

TEST_CASE("hostile: project_input refuses no steps, mixed dtypes, wrong features; mixed batches give per-step blocks") {
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

TEST_CASE("hostile: step_projected on a projection that takes a gradient equals step(), values and gradients (float64)") {
  Generator gen(13);
  for (bool lstm_cell : {true, false}) {
    CAPTURE(lstm_cell);
    std::shared_ptr<Cell> cell = lstm_cell ? std::shared_ptr<Cell>(std::make_shared<LSTMCell>(3, 4, LSTMOptions{.dtype = Dtype::f64}, gen))
                                           : std::shared_ptr<Cell>(std::make_shared<RNNCell>(3, 4, "tanh", CellOptions{.dtype = Dtype::f64}, gen));
    const std::size_t B = 3;
    Tensor x0 = random({3, B}, gen, Dtype::f64).set_requires_grad(), x1 = random({3, B}, gen, Dtype::f64).set_requires_grad();
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
