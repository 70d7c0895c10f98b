// Bigger products where the math allows (issue 12, item 3): a whole sequence's input projection as one
// product in Recurrent (Cell::project_input / step_projected; LSTM and RNN cells), and the weight gradient of a leaf used
// by many matmul/affine entries accumulated as one product by the backward sweep (deferred until the
// leaf's gradient is final). Gradients are checked against central differences in float64 and against
// the per-entry path (grad(), which never defers); the batching itself is checked by counting tape
// entries and the sweep's own statistics (last_sweep_stats), so a silent fall-back fails here.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include <rewind.hpp>

#include "autograd/detail/beside.hpp"
#include "support.hpp"

using namespace rwd;

namespace {

void randomize(Module& m, Generator& gen) {
  for (auto& [k, p] : m.named_parameters()) p.assign(Tensor::uniform(p.shape(), -0.8, 0.8, gen, p.dtype()));
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to_vector(), y = b.to_vector();
  REQUIRE(x.size() == y.size());
  double m = 0;
  for (std::size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

/// Central differences of loss() with respect to every element of `p` (float64), held fixed elsewhere.
Tensor numeric_grad(const std::function<Tensor()>& loss, Tensor& p, double eps = 1e-6) {
  NoGradGuard no_grad;
  std::vector<double> v = p.to_vector(), g(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    const double keep = v[i];
    v[i] = keep + eps;
    p.assign(Tensor::from_vector(v, p.shape(), float64));
    const double up = loss().item();
    v[i] = keep - eps;
    p.assign(Tensor::from_vector(v, p.shape(), float64));
    const double down = loss().item();
    v[i] = keep;
    g[i] = (up - down) / (2 * eps);
  }
  p.assign(Tensor::from_vector(v, p.shape(), float64));
  return Tensor::from_vector(g, p.shape(), float64);
}

/// backward()'s .grad() of every parameter against central differences (the batched path).
void check_backward_by_differences(Module& model, const std::function<Tensor()>& loss) {
  model.zero_grad();
  backward(loss());
  for (auto& [name, p] : model.named_parameters()) {
    CAPTURE(name);
    const Tensor analytic = p.grad().detach();
    REQUIRE(analytic.defined());
    const Tensor numeric = numeric_grad(loss, p);
    const std::vector<double> a = analytic.to_vector(), n = numeric.to_vector();
    for (std::size_t i = 0; i < a.size(); ++i) {
      CAPTURE(i);
      CHECK(std::abs(a[i] - n[i]) <= 1e-6 + 1e-4 * std::abs(n[i]));
    }
  }
}

/// BLAS threads for one scope: products are gathered only when the BLAS runs on several.
struct BlasThreads {
  int previous;
  explicit BlasThreads(int n) : previous(get_num_threads()) { set_num_threads(n); }
  ~BlasThreads() { set_num_threads(previous); }
};

/// A (time, features, batch) float64 sequence and a fixed asymmetric weighting of the outputs.
struct Problem {
  Tensor seq, mask, weights;
};

enum class Kind { rnn, lstm, gru };

Recurrent make(Kind kind, std::size_t in, std::size_t hidden, RecurrentOptions ro, Generator& gen) {
  Recurrent r = kind == Kind::rnn    ? RNN(in, hidden, "tanh", {.dtype = float64}, ro, gen)
                : kind == Kind::lstm ? LSTM(in, hidden, {.dtype = float64}, ro, gen)
                                     : GRU(in, hidden, {.dtype = float64}, ro, gen);
  randomize(r, gen);
  return r;
}

std::string name_of(Kind k) { return k == Kind::rnn ? "RNN" : k == Kind::lstm ? "LSTM" : "GRU"; }

Tensor param_of(const Module& m, const std::string& name) {
  for (auto& [k, p] : m.named_parameters())
    if (k == name) return p;
  FAIL("no parameter " << name);
  return Tensor();
}

/// Number of affine entries on `tape` whose weight operand is `W`.
std::size_t affines_with(const Tape& tape, const Tensor& W) {
  std::size_t n = 0;
  for (const Node& e : tape.entries())
    if (std::string(e.op) == "affine" && e.inputs[0].same(W)) ++n;
  return n;
}

// These tests run the hoisted path at gradcheck sizes (run_sequence hoists only from inputs × batch
// 512 on by default): every case takes one of these first.
struct HoistAlways {
  std::size_t old = detail::set_projection_min_inputs(0);
  ~HoistAlways() { detail::set_projection_min_inputs(old); }
};

}  // namespace

TEST_CASE("batched products: Recurrent RNN, LSTM and GRU gradients by finite differences through 4 steps") {
  HoistAlways hoist;
  BlasThreads threads(2);
  // Through backward() (the deferred, batched weight gradients) and through grad() (gradcheck: the
  // per-entry path), with the input projection hoisted in both.
  // Batch 24: the per-step products (e.g. W_hh's, 5·5·24 multiply-adds) are past the plain-loop size,
  // so they are gathered.
  const std::size_t T = 4, F = 3, H = 5, B = 24;
  for (Kind kind : {Kind::rnn, Kind::lstm, Kind::gru}) {
    const std::string which = name_of(kind);
    CAPTURE(which);
    struct Config {
      const char* what;
      RecurrentOptions ro;
      bool masked;
    };
    const std::vector<Config> configs = {
        {"plain", {}, false},
        {"bidirectional, masked", {.bidirectional = true}, true},
        {"stacked, last output", {.num_layers = 2, .return_sequences = false}, false},
        {"stacked bidirectional, merge sum, masked", {.num_layers = 2, .bidirectional = true, .merge = Merge::sum}, true},
    };
    for (const Config& cfg : configs) {
      CAPTURE(cfg.what);
      Generator gen(5);
      Recurrent r = make(kind, F, H, cfg.ro, gen);
      Tensor seq = Tensor::uniform({T, F, B}, -1, 1, gen, float64).set_requires_grad().set_name("seq");
      std::vector<std::size_t> lengths(B);
      for (std::size_t b = 0; b < B; ++b) lengths[b] = 1 + (b * 7) % T;
      Tensor mask = cfg.masked ? mask_from_lengths(lengths, T, float64) : Tensor();
      Tensor y = r(seq, mask);
      Tensor w = Tensor::uniform(y.shape(), -1, 1, gen, float64);
      auto loss = [&] { return sum(r(seq, mask) * w); };
      check_backward_by_differences(r, loss);
      CHECK(last_sweep_stats().products_deferred > last_sweep_stats().batched_gemms);
      std::vector<Tensor> inputs = r.parameters();
      inputs.push_back(seq);
      GradcheckReport rep = gradcheck([&](const std::vector<Tensor>&) { return r(seq, mask); }, inputs);
      CHECK_MESSAGE(rep.ok(), rep.str());
    }
  }
}

TEST_CASE("batched products: the input projection of every step is one product in Recurrent") {
  HoistAlways hoist;
  // Both directions on this tape (with 2 threads the reverse one would be recorded on a tape of its
  // own, beside: tests/test_beside.cpp).
  const bool beside = detail::set_beside(false);
  const std::size_t T = 5;
  for (Kind kind : {Kind::rnn, Kind::lstm, Kind::gru}) {
    const std::string which = name_of(kind);
    CAPTURE(which);
    Generator gen(3);
    Recurrent r = make(kind, 3, 4, {.bidirectional = true}, gen);
    Tape tape;
    Tensor seq = Tensor::uniform({T, 3, 2}, -1, 1, gen, float64);
    Tensor y = r(seq);
    // GRU keeps a projection per step: its n gate needs W_in·x + b_in apart from W_hn·h + b_hn, so a
    // step's block of a shared projection would be a strided copy (measured slower, and more memory).
    for (bool reverse : {false, true}) {
      const Tensor W_ih = param_of(r.cell(0, reverse), "weight_ih");
      CHECK(affines_with(tape, W_ih) == (kind == Kind::gru ? T : 1));
    }
    // One step at a time (Recur's way, the carried state) still projects each step on its own.
    Recurrent u = make(kind, 3, 4, {}, gen);
    tape.clear();
    for (std::size_t t = 0; t < T; ++t) u(Tensor::uniform({3, 2}, -1, 1, gen, float64));
    CHECK(affines_with(tape, param_of(u.cell(0), "weight_ih")) == T);
  }
  detail::set_beside(beside);
}

TEST_CASE("batched products: a weight used at every step gets its gradient as one product") {
  HoistAlways hoist;
  BlasThreads threads(2);
  const std::size_t T = 6;
  for (Kind kind : {Kind::rnn, Kind::lstm, Kind::gru}) {
    const std::string which = name_of(kind);
    CAPTURE(which);
    Generator gen(4);
    Recurrent r = make(kind, 3, 8, {}, gen);
    Tensor seq = Tensor::uniform({T, 3, 16}, -1, 1, gen, float64);
    r.zero_grad();
    backward(sum(r(seq) * r(seq)));  // two runs: W_hh is used by 2·T affine entries
    const SweepStats st = last_sweep_stats();
    // W_hh's products (one per step and run) land in one GEMM (or a few, when chunked for memory).
    CHECK(st.products_deferred >= 2 * T);
    CHECK(st.batched_gemms >= 1);
    CHECK(st.batched_gemms < st.products_deferred / 2);
  }
}

TEST_CASE("batched products: equal to the per-step path (float64 and float32)") {
  HoistAlways hoist;
  BlasThreads threads(2);
  for (Dtype dt : {float64, float32}) {
    for (Kind kind : {Kind::rnn, Kind::lstm, Kind::gru}) {
      const std::string which = name_of(kind);
    CAPTURE(which);
      const std::string dtype = dtype_name(dt);
      CAPTURE(dtype);
      Generator gen(9);
      Recurrent r = make(kind, 5, 6, {}, gen);
      r.to(dt);
      Tensor seq = Tensor::uniform({7, 5, 16}, -1, 1, gen, dt);
      Tensor w = Tensor::uniform({7, 6, 16}, -1, 1, gen, dt);
      // The whole sequence: hoisted projection, batched weight gradients.
      r.zero_grad();
      Tensor y = r(seq);
      y.keep_on_clear();
      backward(sum(y * w));
      CHECK(last_sweep_stats().batched_gemms >= 1);
      // Step by step through the cell (each step projects its own input), gradients by grad(), which
      // never defers: the per-entry path.
      Cell& cell = r.cell(0);
      State s = cell.initial_state(16);
      std::vector<Tensor> ys;
      for (const Tensor& x : split_steps(seq)) {
        auto [yt, next] = cell.step(x, s);
        ys.push_back(yt);
        s = next;
      }
      Tensor y_ref = stack_steps(ys);
      y_ref.keep_on_clear();
      const std::vector<Tensor> params = r.parameters();
      std::vector<Tensor> g_ref = grad({sum(y_ref * w)}, params);
      const double tol = dt == float64 ? 1e-12 : 1e-5;
      CHECK(max_abs_diff(y, y_ref) <= tol);
      for (std::size_t i = 0; i < params.size(); ++i) {
        CAPTURE(i);
        CHECK(max_abs_diff(params[i].grad(), g_ref[i]) <= tol);
      }
    }
  }
}

TEST_CASE("batched products: a gradient-ready hook fires once, after the batched product has landed") {
  HoistAlways hoist;
  BlasThreads threads(2);
  Generator gen(6);
  Recurrent r = make(Kind::lstm, 3, 4, {.num_layers = 2}, gen);
  Tensor seq = Tensor::uniform({5, 3, 16}, -1, 1, gen, float64);
  std::vector<std::pair<Tensor, std::vector<double>>> seen;
  r.zero_grad();
  {
    GradReadyHook hook = on_grad_ready([&](const Tensor& p) { seen.emplace_back(p, p.grad().to_vector()); });
    backward(sum(r(seq) * r(seq)));
  }
  CHECK(last_sweep_stats().batched_gemms >= 1);
  const std::vector<Tensor> params = r.parameters();
  CHECK(seen.size() == params.size());
  for (const Tensor& p : params) {
    int n = 0;
    for (const auto& [t, g] : seen)
      if (t.same(p)) {
        ++n;
        CHECK(g == p.grad().to_vector());
      }
    CHECK(n == 1);
  }
  // The same gradients as the per-entry path.
  std::vector<Tensor> g_ref = grad({sum(r(seq) * r(seq))}, params);
  for (std::size_t i = 0; i < params.size(); ++i) CHECK(max_abs_diff(params[i].grad(), g_ref[i]) <= 1e-12);
}

TEST_CASE("batched products: a leaf used by batched matmuls and by other ops, onto an existing .grad()") {
  HoistAlways hoist;
  BlasThreads threads(2);
  // W in a recurrence h = tanh(W·x_t + h) (affine), as the transposed rhs of x_tᵀ·Wᵀ (matmul), and in
  // ⟨W, W⟩ and a vector affine (not gathered): dL/dW by differences, and against grad().
  Generator gen(8);
  Tensor W = Tensor::uniform({8, 6}, -1, 1, gen, float64).set_requires_grad().set_name("W");
  std::vector<Tensor> xs, ws, vs;
  for (int t = 0; t < 5; ++t) {
    xs.push_back(Tensor::uniform({6, 16}, -1, 1, gen, float64));
    ws.push_back(Tensor::uniform({8, 16}, -1, 1, gen, float64));
    vs.push_back(Tensor::uniform({16, 8}, -1, 1, gen, float64));
  }
  Tensor u = Tensor::uniform({6}, -1, 1, gen, float64), c = Tensor::uniform({8}, -1, 1, gen, float64);
  auto loss = [&] {
    Tensor L = sum(W * W) + sum(affine(W, u) * c);
    Tensor h = Tensor::zeros({8, 16}, float64);
    for (int t = 0; t < 5; ++t) {
      h = tanh(affine(W, xs[t], Tensor(), h));  // W at every step, through a recurrence
      L = L + sum(h * ws[t]) + sum(matmul(xs[t], W, true, true) * vs[t]);
    }
    return L;
  };
  const Tensor numeric = numeric_grad(loss, W);
  const Tensor before = Tensor::uniform({8, 6}, -1, 1, gen, float64);
  W.set_grad(before.detach());
  backward(loss());
  CHECK(last_sweep_stats().products_deferred >= 10);
  CHECK(max_abs_diff(W.grad(), before + numeric) <= 1e-6);
  CHECK(max_abs_diff(W.grad() - before, grad({loss()}, {W})[0]) <= 1e-12);
  // A .grad() that a view reads is not written in place: the view keeps the old values.
  W.set_grad(before.detach());
  Tensor view = reshape(W.grad(), {48});
  const std::vector<double> old = view.to_vector();
  backward(loss());
  CHECK(view.to_vector() == old);
  CHECK(max_abs_diff(W.grad(), before + numeric) <= 1e-6);
}

TEST_CASE("batched products: retain_graph and create_graph keep their meaning") {
  HoistAlways hoist;
  BlasThreads threads(2);
  Generator gen(10);
  Tensor W = Tensor::uniform({8, 8}, -0.3, 0.3, gen, float64).set_requires_grad().set_name("W");
  Tensor x0 = Tensor::uniform({8, 16}, -1, 1, gen, float64);
  auto f = [&](const std::vector<Tensor>& in) {
    Tensor h = x0;
    for (int t = 0; t < 4; ++t) h = tanh(matmul(in[0], h));
    return h;
  };
  // retain: a second sweep adds the same gradient again.
  Tensor L = sum(f({W}) * x0);
  backward(L, Tensor(), {.retain = true});
  CHECK(last_sweep_stats().batched_gemms >= 1);
  const Tensor once = W.grad().detach();
  backward(L);
  CHECK(max_abs_diff(W.grad(), once * 2.0) <= 1e-12);
  // create_graph: the per-entry, recorded path (second derivatives by differences).
  GradcheckReport rep = gradgradcheck(f, {W});
  CHECK_MESSAGE(rep.ok(), rep.str());
  W.zero_grad();
  backward(sum(f({W}) * x0), Tensor(), {.create_graph = true});
  CHECK(last_sweep_stats().products_deferred == 0);
  CHECK(max_abs_diff(W.grad(), once) <= 1e-12);
}

TEST_CASE("batched products: step_projected on a block of a wider projection equals step, and is checked") {
  HoistAlways hoist;
  Generator gen(11);
  LSTMCell lstm(3, 4, {.dtype = float64}, gen);
  RNNCell rnn(3, 4, "tanh", {.dtype = float64}, gen);
  CHECK_FALSE(GRUCell(3, 4, {.dtype = float64}, gen).projects_input());
  for (Cell* cell : std::vector<Cell*>{&lstm, &rnn}) {
    CAPTURE(cell->repr());
    REQUIRE(cell->projects_input());
    const Tensor x0 = Tensor::uniform({3, 2}, -1, 1, gen, float64), x1 = Tensor::uniform({3, 2}, -1, 1, gen, float64);
    State s;
    for (const Tensor& t : cell->initial_state(2)) s.push_back(Tensor::uniform(t.shape(), -1, 1, gen, float64));
    const Tensor P = cell->project_input({x0, x1});  // both steps' projections side by side
    auto [y, next] = cell->step_projected(P, 2, s);                // step 1's block
    auto [y_ref, next_ref] = cell->step(x1, s);
    CHECK(max_abs_diff(y, y_ref) <= 1e-15);
    for (std::size_t k = 0; k < next.size(); ++k) CHECK(max_abs_diff(next[k], next_ref[k]) <= 1e-15);
    CHECK_THROWS_AS(cell->step_projected(P, 3, s), ShapeError);  // columns 3, 4 of 4: outside
    CHECK_THROWS_AS(cell->step_projected(slice(P, 0, 0, 2), 0, s), ShapeError);  // too few rows
    CHECK_THROWS_AS(cell->step_projected(P.to(float32), 0, s), DtypeError);
  }
  // A cell that does not split its step: Cell's own project_input and step_projected refuse…
  struct Plain : RNNCell {
    using RNNCell::RNNCell;
    bool projects_input() const override { return false; }
  } plain(3, 4, "tanh", {.dtype = float64}, gen);
  CHECK_THROWS_AS(plain.Cell::project_input({Tensor::zeros({3, 2}, float64)}), ValueError);
  CHECK_THROWS_AS(plain.Cell::step_projected(Tensor::zeros({4, 2}, float64), 0, plain.initial_state(2)), ValueError);
  // …and a Recurrent of it steps it (one projection per step), with the same outputs.
  Recurrent a(std::vector<std::shared_ptr<Cell>>{std::make_shared<Plain>(3, 4, "tanh", CellOptions{.dtype = float64}, gen)});
  Recurrent b(std::vector<std::shared_ptr<Cell>>{std::make_shared<RNNCell>(3, 4, "tanh", CellOptions{.dtype = float64}, gen)});
  b.load_state_dict(a.state_dict());
  const Tensor seq = Tensor::uniform({5, 3, 2}, -1, 1, gen, float64);
  Tape tape;
  CHECK(max_abs_diff(a(seq), b(seq)) <= 1e-14);
  CHECK(affines_with(tape, param_of(a.cell(0), "weight_ih")) == 5);
  CHECK(affines_with(tape, param_of(b.cell(0), "weight_ih")) == 1);
}

TEST_CASE("batched products: affine_steps(W, {x0, x1, x2}, b) equals affine(W, concat(xs, 1), b), to second order") {
  HoistAlways hoist;
  Generator gen(12);
  Tensor W = Tensor::uniform({4, 3}, -1, 1, gen, float64).set_requires_grad().set_name("W");
  Tensor b = Tensor::uniform({4}, -1, 1, gen, float64).set_requires_grad().set_name("b");
  std::vector<Tensor> xs;
  for (std::size_t cols : {2, 1, 3})
    xs.push_back(Tensor::uniform({3, cols}, -1, 1, gen, float64).set_requires_grad().set_name("x" + std::to_string(xs.size())));
  const Tensor wy = Tensor::uniform({4, 6}, -1, 1, gen, float64);
  std::vector<Tensor> inputs = {W, b};
  inputs.insert(inputs.end(), xs.begin(), xs.end());
  auto fused = [&](const std::vector<Tensor>& in) {
    return affine_steps(in[0], std::vector<Tensor>(in.begin() + 2, in.end()), in[1]);
  };
  auto composed = [&](const std::vector<Tensor>& in) {
    return affine(in[0], concat(std::vector<Tensor>(in.begin() + 2, in.end()), 1), in[1]);
  };
  CHECK(max_abs_diff(fused(inputs), composed(inputs)) <= 1e-15);
  const std::vector<Tensor> g1 = grad({sum(fused(inputs) * wy)}, inputs);
  const std::vector<Tensor> g2 = grad({sum(composed(inputs) * wy)}, inputs);
  for (std::size_t i = 0; i < inputs.size(); ++i) CHECK(max_abs_diff(g1[i], g2[i]) <= 1e-15);
  GradcheckReport r1 = gradcheck(fused, inputs);
  CHECK_MESSAGE(r1.ok(), r1.str());
  GradcheckReport r2 = gradgradcheck([&](const std::vector<Tensor>& in) { return tanh(fused(in)); }, inputs);
  CHECK_MESSAGE(r2.ok(), r2.str());
  // Checked shapes, named.
  CHECK_THROWS_AS(affine_steps(W, {Tensor::zeros({2, 2}, float64)}), ShapeError);
  CHECK_THROWS_AS(affine_steps(W, {}), ValueError);
  CHECK_THROWS_AS(affine_steps(W, xs, Tensor::zeros({3}, float64)), ShapeError);
}

TEST_CASE("batched products: with the BLAS on one thread nothing is gathered, and the gradients are the same") {
  HoistAlways hoist;
  Generator gen(13);
  Recurrent r = make(Kind::lstm, 3, 8, {}, gen);
  Tensor seq = Tensor::uniform({6, 3, 16}, -1, 1, gen, float64);
  std::vector<Tensor> gathered;
  for (int n : {2, 1}) {
    BlasThreads threads(n);
    r.zero_grad();
    backward(sum(r(seq) * r(seq)));
    CHECK((last_sweep_stats().products_deferred > 0) == (n > 1));
    if (n > 1) {
      for (const Tensor& p : r.parameters()) gathered.push_back(p.grad().detach());
    } else {
      const std::vector<Tensor> params = r.parameters();
      for (std::size_t i = 0; i < params.size(); ++i) CHECK(max_abs_diff(params[i].grad(), gathered[i]) <= 1e-12);
    }
  }
}

TEST_CASE("batched products: by default only a step of inputs × batch ≥ 512 is hoisted") {
  for (auto [in, batch, hoisted] : {std::tuple{3, 2, false}, std::tuple{1, 32, false}, std::tuple{32, 16, true}}) {
    CAPTURE(in);
    CAPTURE(batch);
    Generator gen(5);
    Recurrent r = make(Kind::lstm, static_cast<std::size_t>(in), 4, {}, gen);
    Tape tape;
    r(Tensor::uniform({6, static_cast<std::size_t>(in), static_cast<std::size_t>(batch)}, -1, 1, gen, float64));
    CHECK(affines_with(tape, param_of(r.cell(0), "weight_ih")) == (hoisted ? 1u : 6u));
  }
}

TEST_CASE("batched products: affine_seq(W, x, b) equals affine on the permuted steps, to second order, on random shapes") {
  Generator gen(13);
  for (int round = 0; round < 4; ++round) {
    const std::size_t T = 1 + gen.uniform() * 5, k = 1 + gen.uniform() * 6, B = 1 + gen.uniform() * 4, m = 1 + gen.uniform() * 5;
    Tensor W = Tensor::uniform({m, k}, -1, 1, gen, float64).set_requires_grad().set_name("W");
    Tensor b = Tensor::uniform({m}, -1, 1, gen, float64).set_requires_grad().set_name("b");
    Tensor x = Tensor::uniform({T, k, B}, -1, 1, gen, float64).set_requires_grad().set_name("x");
    const Tensor wy = Tensor::uniform({m, T * B}, -1, 1, gen, float64);
    const std::vector<Tensor> inputs = {W, x, b};
    auto fused = [&](const std::vector<Tensor>& in) { return affine_seq(in[0], in[1], in[2]); };
    auto composed = [&](const std::vector<Tensor>& in) {
      return affine(in[0], reshape(permute(in[1], {1, 0, 2}), {k, T * B}), in[2]);
    };
    INFO("T=" << T << " k=" << k << " B=" << B << " m=" << m);
    CHECK(max_abs_diff(fused(inputs), composed(inputs)) <= 1e-14);
    const std::vector<Tensor> g1 = grad({sum(fused(inputs) * wy)}, inputs);
    const std::vector<Tensor> g2 = grad({sum(composed(inputs) * wy)}, inputs);
    for (std::size_t i = 0; i < inputs.size(); ++i) CHECK(max_abs_diff(g1[i], g2[i]) <= 1e-14);
    GradcheckReport r1 = gradcheck(fused, inputs);
    CHECK_MESSAGE(r1.ok(), r1.str());
    GradcheckReport r2 = gradgradcheck([&](const std::vector<Tensor>& in) { return tanh(fused(in)); }, inputs);
    CHECK_MESSAGE(r2.ok(), r2.str());
    // Without a bias too.
    GradcheckReport r3 = gradcheck([&](const std::vector<Tensor>& in) { return affine_seq(in[0], in[1]); }, {W, x});
    CHECK_MESSAGE(r3.ok(), r3.str());
  }
  // Checked shapes, named.
  const Tensor W = Tensor::zeros({4, 3}, float64);
  CHECK(contains(message_of<ShapeError>([&] { affine_seq(W, Tensor::zeros({3, 2}, float64)); }), "affine_seq"));
  CHECK(contains(message_of<ShapeError>([&] { affine_seq(W, Tensor::zeros({2, 4, 5}, float64)); }), "x.shape[1] (4) must equal W.shape[1] (3)"));
  CHECK(contains(message_of<ShapeError>([&] { affine_seq(W, Tensor::zeros({2, 3, 5}, float64), Tensor::zeros({3}, float64)); }), "one bias per row"));
  CHECK_THROWS_AS(affine_seq(W, Tensor::zeros({2, 3, 5}, float32)), DtypeError);
}

TEST_CASE("batched products: TimeDistributed(Dense) runs affine_seq, with the values and gradients of the permuted product") {
  Generator gen(14);
  auto dense = std::make_shared<Dense>(5, 3, Activation("tanh"), true, float64, gen);
  TimeDistributed td(std::static_pointer_cast<Module>(dense));
  Tensor x = Tensor::uniform({4, 5, 2}, -1, 1, gen, float64).set_requires_grad();
  Tape tape;
  const Tensor y = td(x);
  REQUIRE(y.shape() == Shape{4, 3, 2});
  bool fused = false;
  for (std::size_t i = 0; i < tape.size(); ++i) fused = fused || std::string(tape[i].op) == "affine";
  CHECK(fused);
  CHECK(tape.size() == 4);  // affine_seq, tanh, the output's reshape and permute: none of the input
  const Tensor want = permute(reshape(tanh(affine(dense->weight, reshape(permute(x, {1, 0, 2}), {5, 8}), dense->bias)), {3, 4, 2}), {1, 0, 2});
  CHECK(max_abs_diff(y, want) <= 1e-15);
  GradcheckReport r = gradcheck([&](const std::vector<Tensor>& in) { return td(in[0]); }, {x});
  CHECK_MESSAGE(r.ok(), r.str());
  // A sequence of another width reaches the Dense, whose message names it.
  CHECK(contains(message_of<ShapeError>([&] { td(Tensor::zeros({4, 6, 2}, float64)); }), "Dense(5 => 3, tanh)"));
}

// A user's class derived from Dense that overrides forward: TimeDistributed must run that forward, not
// Dense's sequence path (which would skip the override).
namespace {
struct ScaledDense : Dense {
  using Dense::Dense;
  Tensor forward(const Tensor& x) override { return Dense::forward(x) * Tensor::scalar(2.0, float64); }
};
}  // namespace

TEST_CASE("batched products: TimeDistributed runs the forward of a class derived from Dense") {
  Generator gen(15);
  auto scaled = std::make_shared<ScaledDense>(5, 3, Activation(), true, float64, gen);
  TimeDistributed td(std::static_pointer_cast<Module>(scaled));
  const Tensor x = Tensor::uniform({4, 5, 2}, -1, 1, gen, float64);
  const Tensor y = td(x);
  const Tensor plain = permute(reshape(affine(scaled->weight, reshape(permute(x, {1, 0, 2}), {5, 8}), scaled->bias), {3, 4, 2}), {1, 0, 2});
  CHECK(max_abs_diff(y, plain * Tensor::scalar(2.0, float64)) <= 1e-15);
}
