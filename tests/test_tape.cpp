// The tape's semantics: accumulation, grad modes, seeds, retain and release, long unrolls, double
// backward, grad(), custom ops, tape scopes, dtypes. Every expected gradient here is derived by hand
// (or by gradgradcheck's finite differences), never captured from the code under test.
#include <doctest/doctest.h>

#include "support.hpp"

#include <cmath>
#include <functional>
#include <pthread.h>
#include <string>
#include <vector>

#include <rewind.hpp>

using namespace rwd;

namespace {

Tensor f64(const std::vector<double>& v, const Shape& s) { return Tensor::from_vector(v, s, float64); }
Tensor param(const std::vector<double>& v, const Shape& s) { return f64(v, s).set_requires_grad(); }

/// Checks every element of `got` against `want`: |got − want| ≤ atol + rtol·|want|, naming the index.
void check_values(const Tensor& got, const std::vector<double>& want, const char* what, double rtol = 1e-12,
                  double atol = 1e-12) {
  REQUIRE_MESSAGE(got.defined(), what << " is undefined");
  const std::vector<double> g = got.to_vector();
  REQUIRE_MESSAGE(g.size() == want.size(), what << ": " << g.size() << " values, expected " << want.size());
  for (std::size_t i = 0; i < g.size(); ++i)
    CHECK_MESSAGE(std::abs(g[i] - want[i]) <= atol + rtol * std::abs(want[i]),
                  what << "[" << i << "]: got " << g[i] << ", expected " << want[i]);
}

#define CHECK_CONTAINS(msg, part) CHECK_MESSAGE(contains(msg, part), "message \"" << msg << "\" lacks \"" << part << "\"")

std::vector<double> elementwise(const std::vector<double>& a, const std::function<double(double, std::size_t)>& f) {
  std::vector<double> out(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) out[i] = f(a[i], i);
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The accumulate rule
// ---------------------------------------------------------------------------------------------

TEST_CASE("tape: fan-out y = x*x + x accumulates both uses (dy/dx = 2x + 1)") {
  Tape tape;
  const std::vector<double> xv{0.5, -1.5, 2.0}, c{0.3, -0.7, 1.1};
  Tensor x = param(xv, {3});
  Tensor y = x * x + x;
  backward(sum(y * f64(c, {3})));
  check_values(x.grad(), elementwise(xv, [&](double v, std::size_t i) { return (2 * v + 1) * c[i]; }), "dx");
}

TEST_CASE("tape: a leaf used in many places receives one contribution per use") {
  Tape tape;
  const std::vector<double> xv{0.4, -0.9, 1.3}, c{1.7, -0.2, 0.6};
  Tensor x = param(xv, {3});
  Tensor s = param({0.25}, {1});  // broadcast into every element: its gradient sums over them
  // f = Σ c ⊙ (x³ + 2x + x·tanh(x) + s·x + s)
  Tensor f = sum(f64(c, {3}) * (x * x * x + 2.0 * x + x * tanh(x) + s * x + s));
  backward(f);
  const double sv = 0.25;
  check_values(x.grad(), elementwise(xv, [&](double v, std::size_t i) {
                 const double t = std::tanh(v);
                 return c[i] * (3 * v * v + 2 + t + v * (1 - t * t) + sv);
               }),
               "dx");
  double ds = 0;
  for (std::size_t i = 0; i < 3; ++i) ds += c[i] * (xv[i] + 1);
  check_values(s.grad(), {ds}, "ds");
}

TEST_CASE("tape: .grad() accumulates across backward calls until zero_grad") {
  Tape tape;
  const std::vector<double> xv{0.5, -1.0}, c{2.0, 0.3};
  Tensor x = param(xv, {2});
  Tensor cc = f64(c, {2});
  auto loss = [&] { return sum(tanh(x * x) * cc); };  // d/dx = c ⊙ 2x (1 − tanh²(x²))
  const std::vector<double> once = elementwise(xv, [&](double v, std::size_t i) {
    const double t = std::tanh(v * v);
    return c[i] * 2 * v * (1 - t * t);
  });
  auto times = [&](double k) { return elementwise(once, [k](double v, std::size_t) { return k * v; }); };

  CHECK_FALSE(x.grad().defined());
  backward(loss());
  check_values(x.grad(), once, "after 1 backward");
  backward(loss());
  check_values(x.grad(), times(2), "after 2 backwards");
  backward(loss());
  check_values(x.grad(), times(3), "after 3 backwards");

  SUBCASE("zero_grad keeps the buffer and zeroes it") {
    Tensor buffer = x.grad();
    x.zero_grad();
    REQUIRE(x.grad().defined());
    CHECK(x.grad().same(buffer));
    check_values(x.grad(), {0.0, 0.0}, "after zero_grad");
    backward(loss());
    check_values(x.grad(), once, "after zero_grad + backward");
  }
  SUBCASE("zero_grad(set_to_none) drops the gradient") {
    x.zero_grad(/*set_to_none=*/true);
    CHECK_FALSE(x.grad().defined());
    backward(loss());
    check_values(x.grad(), once, "after set_to_none + backward");
  }
}

// ---------------------------------------------------------------------------------------------
// Grad modes and detach
// ---------------------------------------------------------------------------------------------

TEST_CASE("tape: NoGradGuard records nothing — EnableGradGuard turns recording back on inside it") {
  Tape tape;
  Tensor x = param({0.5, -0.25}, {2});
  Tensor warm = x * x;  // one entry already there
  const std::size_t before = tape.size();
  REQUIRE(before == 1);
  REQUIRE(GradMode::enabled());
  {
    NoGradGuard no_grad;
    CHECK_FALSE(GradMode::enabled());
    Tensor y = tanh(x * x + x);
    CHECK_FALSE(y.requires_grad());
    CHECK(y.is_leaf());
    CHECK(tape.size() == before);
    check_values(y, {std::tanh(0.75), std::tanh(-0.1875)}, "no-grad value");  // the value is still computed
    CHECK_CONTAINS(message_of<TapeError>([&] { backward(sum(y)); }), "does not require a gradient");
    {
      EnableGradGuard enable;
      CHECK(GradMode::enabled());
      Tensor z = x * x;
      CHECK(z.requires_grad());
      CHECK(tape.size() == before + 1);
    }
    CHECK_FALSE(GradMode::enabled());  // restored to the enclosing no-grad
    Tensor w = x * 3.0;
    CHECK_FALSE(w.requires_grad());
    CHECK(tape.size() == before + 1);
  }
  CHECK(GradMode::enabled());
  Tensor v = x * 3.0;
  CHECK(v.requires_grad());
  CHECK(tape.size() == before + 2);
}

TEST_CASE("tape: detach cuts history: the gradient stops at the detached value") {
  Tape tape;
  const std::vector<double> xv{0.7, -1.1, 0.2}, c{1.0, -2.0, 0.5};
  Tensor x = param(xv, {3});
  Tensor y = x * x;
  Tensor d = y.detach();
  CHECK(d.is_leaf());
  CHECK_FALSE(d.requires_grad());
  CHECK_FALSE(d.same(y));
  check_values(d, {0.49, 1.21, 0.04}, "detached value");
  // f = Σ c ⊙ stop(x²) ⊙ x:  df/dx = c ⊙ x²   (not 3x², which flowing through x² would give)
  backward(sum(f64(c, {3}) * d * x));
  check_values(x.grad(), elementwise(xv, [&](double v, std::size_t i) { return c[i] * v * v; }), "dx");
}

// ---------------------------------------------------------------------------------------------
// Seeds
// ---------------------------------------------------------------------------------------------

TEST_CASE("tape: backward of a non-scalar needs a seed — an explicit seed gives Jᵀ·seed") {
  Tape tape;
  // y = A·X with X (3, 2):  dX = Aᵀ·S for seed S (2, 2)
  const std::vector<double> av{1.0, -2.0, 0.5, 3.0, 0.25, -1.5};  // A (2, 3)
  const std::vector<double> xv{0.1, 0.2, -0.3, 0.4, 0.5, -0.6};   // X (3, 2)
  const std::vector<double> sv{1.0, -1.0, 0.5, 2.0};              // S (2, 2)
  Tensor A = f64(av, {2, 3});
  Tensor X = param(xv, {3, 2});
  Tensor y = matmul(A, X);

  const std::string msg = message_of<TapeError>([&] { backward(y); });
  CHECK_CONTAINS(msg, "(2, 2)");
  CHECK_CONTAINS(msg, "seed");

  const std::string shape_msg = message_of<ShapeError>([&] { backward(y, f64({1, 2, 3}, {3})); });
  CHECK_CONTAINS(shape_msg, "(2, 2)");
  CHECK_CONTAINS(shape_msg, "(3,)");
  const std::string dtype_msg =
      message_of<DtypeError>([&] { backward(y, Tensor::from_vector(sv, {2, 2}, float32)); });
  CHECK_CONTAINS(dtype_msg, "float64");
  CHECK_CONTAINS(dtype_msg, "float32");

  // The failed calls left the tape intact: the real sweep still works.
  y.backward(f64(sv, {2, 2}));
  std::vector<double> want(6, 0.0);
  for (std::size_t k = 0; k < 3; ++k)
    for (std::size_t j = 0; j < 2; ++j)
      for (std::size_t i = 0; i < 2; ++i) want[k * 2 + j] += av[i * 3 + k] * sv[i * 2 + j];
  check_values(X.grad(), want, "Aᵀ·S");
}

// ---------------------------------------------------------------------------------------------
// Retain, release, keep_on_clear
// ---------------------------------------------------------------------------------------------

TEST_CASE("tape: retain keeps the tape for a second backward — without it the tape is cleared") {
  Tape tape;
  const std::vector<double> xv{0.3, -0.8}, c{1.5, -0.5};
  const double w = 1.7;
  Tensor x = param(xv, {2});
  Tensor h = tanh(x * w);
  Tensor loss = sum(h * f64(c, {2}));
  // dloss/dx = c ⊙ w (1 − tanh²(w x))
  const std::vector<double> once = elementwise(xv, [&](double v, std::size_t i) {
    const double t = std::tanh(w * v);
    return c[i] * w * (1 - t * t);
  });
  const std::size_t entries = tape.size();
  REQUIRE(entries > 0);

  backward(loss, Tensor(), SweepOptions{.retain = true});
  CHECK(tape.size() == entries);
  check_values(x.grad(), once, "after the first retained backward");
  backward(loss, Tensor(), SweepOptions{.retain = true});
  check_values(x.grad(), elementwise(once, [](double v, std::size_t) { return 2 * v; }), "after the second");

  backward(loss);  // no retain: the last sweep clears the tape
  check_values(x.grad(), elementwise(once, [](double v, std::size_t) { return 3 * v; }), "after the third");
  CHECK(tape.size() == 0);
  CHECK(Tape::current().size() == 0);

  // Intermediates kept past the clear are released; touching them names their op.
  const std::string msg = message_of<TapeError>([&] { (void)(h * 2.0); });
  CHECK_CONTAINS(msg, "'tanh'");
  CHECK_CONTAINS(msg, "(2,)");
  CHECK_CONTAINS(message_of<TapeError>([&] { (void)h.to_vector(); }), "tanh");
  CHECK_CONTAINS(message_of<TapeError>([&] { backward(loss); }), "'sum'");
  CHECK_CONTAINS(h.str(), "released");
  // Leaves are the user's: untouched by the clear.
  check_values(x, xv, "the leaf x");
}

TEST_CASE("tape: keep_on_clear keeps a value past the clear as a constant leaf") {
  Tape tape;
  const std::vector<double> xv{0.3, -0.8};
  Tensor x = param(xv, {2});
  Tensor h = tanh(x * 2.0);
  h.keep_on_clear();
  Tensor other = x * 5.0;  // not kept
  backward(sum(h));
  CHECK(tape.size() == 0);
  CHECK(h.is_leaf());
  CHECK_FALSE(h.requires_grad());
  const std::vector<double> hv = elementwise(xv, [](double v, std::size_t) { return std::tanh(2 * v); });
  check_values(h, hv, "kept value");
  CHECK_THROWS_AS((void)other.to_vector(), TapeError);

  // The kept state carries into the next step as a constant: d Σ(h ⊙ x) / dx = h.
  x.zero_grad(true);
  backward(sum(h * x));
  check_values(x.grad(), hv, "dx through the kept constant");
}

// ---------------------------------------------------------------------------------------------
// Long unrolls: the sweep and the freeing are loops
// ---------------------------------------------------------------------------------------------

namespace {

struct Unrolled {
  std::size_t entries = 0;                  // tape size before backward
  std::size_t entries_after = 0;            // and after (0: the sweep cleared it)
  std::vector<double> dw, dh0;              // (2,) each
  std::vector<std::vector<double>> dx;      // per step, (2,) each
};

double input_at(std::size_t t, std::size_t k) {
  return k == 0 ? 0.5 * std::sin(0.01 * static_cast<double>(t)) : 0.3 * std::cos(0.013 * static_cast<double>(t));
}

const std::vector<double> k_w{0.9, -0.7}, k_h0{0.2, -0.4}, k_c{0.7, -1.3};

// h_t = tanh(w ⊙ h_{t−1} + x_t), loss = Σ c ⊙ h_N, on the tape.
Unrolled unroll_on_tape(std::size_t steps) {
  Tape tape;
  Tensor w = param(k_w, {2});
  Tensor h0 = param(k_h0, {2});
  std::vector<Tensor> xs;
  xs.reserve(steps);
  Tensor h = h0;
  for (std::size_t t = 1; t <= steps; ++t) {
    xs.push_back(param({input_at(t, 0), input_at(t, 1)}, {2}));
    h = tanh(w * h + xs.back());
  }
  Tensor loss = sum(h * f64(k_c, {2}));
  Unrolled out;
  out.entries = tape.size();
  backward(loss);
  out.entries_after = tape.size();
  out.dw = w.grad().to_vector();
  out.dh0 = h0.grad().to_vector();
  for (const Tensor& x : xs) out.dx.push_back(x.grad().to_vector());
  return out;
}

// The same, forward and backward written out by hand in doubles.
Unrolled unroll_by_hand(std::size_t steps) {
  std::vector<std::vector<double>> hs{k_h0};
  for (std::size_t t = 1; t <= steps; ++t) {
    std::vector<double> h(2);
    for (std::size_t k = 0; k < 2; ++k) h[k] = std::tanh(k_w[k] * hs.back()[k] + input_at(t, k));
    hs.push_back(h);
  }
  Unrolled out;
  out.dw.assign(2, 0.0);
  out.dx.assign(steps, std::vector<double>(2));
  std::vector<double> dh = k_c;  // dloss/dh_N
  for (std::size_t t = steps; t >= 1; --t) {
    for (std::size_t k = 0; k < 2; ++k) {
      const double da = dh[k] * (1 - hs[t][k] * hs[t][k]);  // through tanh
      out.dw[k] += da * hs[t - 1][k];
      out.dx[t - 1][k] = da;
      dh[k] = da * k_w[k];  // to h_{t−1}
    }
  }
  out.dh0 = dh;
  return out;
}

/// Runs f on a thread whose stack is only 512 KiB: a recursive sweep or a recursive chain of
/// destructors over tens of thousands of entries would overflow it (and crash the test).
template <class F>
void run_on_small_stack(F f) {
  std::string error;
  auto body = [&] {
    try {
      f();
    } catch (const std::exception& e) {
      error = e.what();
    }
  };
  using Body = decltype(body);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  REQUIRE(pthread_attr_setstacksize(&attr, 512 * 1024) == 0);
  pthread_t thread;
  REQUIRE(pthread_create(
              &thread, &attr,
              [](void* p) -> void* {
                (*static_cast<Body*>(p))();
                return nullptr;
              },
              &body) == 0);
  pthread_join(thread, nullptr);
  pthread_attr_destroy(&attr);
  REQUIRE_MESSAGE(error.empty(), "threw: " << error);
}

}  // namespace

TEST_CASE("tape: a 10000-step unroll h = tanh(w*h + x_t) sweeps and frees without recursion") {
  const std::size_t steps = 10000;
  Unrolled tape;
  run_on_small_stack([&] { tape = unroll_on_tape(steps); });
  CHECK(tape.entries == 3 * steps + 2);  // mul, add, tanh per step; then mul, sum
  CHECK(tape.entries_after == 0);
  const Unrolled hand = unroll_by_hand(steps);
  for (std::size_t k = 0; k < 2; ++k) {
    INFO("component " << k);
    CHECK(tape.dw[k] == doctest::Approx(hand.dw[k]).epsilon(1e-10));
    CHECK(tape.dh0[k] == doctest::Approx(hand.dh0[k]).epsilon(1e-10));
  }
  REQUIRE(tape.dx.size() == steps);
  std::size_t bad = 0;
  for (std::size_t t = 0; t < steps; ++t)
    for (std::size_t k = 0; k < 2; ++k)
      if (std::abs(tape.dx[t][k] - hand.dx[t][k]) > 1e-12 + 1e-10 * std::abs(hand.dx[t][k])) {
        if (bad++ < 5) FAIL_CHECK("dx_" << t + 1 << "[" << k << "]: tape " << tape.dx[t][k] << ", hand " << hand.dx[t][k]);
      }
  CHECK(bad == 0);
  // The last steps' inputs are far from zero gradient (the check is not vacuous).
  CHECK(std::abs(hand.dx[steps - 1][0]) > 0.1);
}

TEST_CASE("tape: entries per unrolled step are constant (tape size is linear in the steps)") {
  auto entries = [](std::size_t steps) {
    Tape tape;
    Tensor w = param(k_w, {2});
    Tensor h = param(k_h0, {2});
    for (std::size_t t = 1; t <= steps; ++t) h = tanh(w * h + f64({input_at(t, 0), input_at(t, 1)}, {2}));
    return tape.size();  // the tape (10,000 steps of it) is freed here, by its destructor, in a loop
  };
  std::size_t e100 = 0, e1000 = 0, e10000 = 0;
  run_on_small_stack([&] { e100 = entries(100), e1000 = entries(1000), e10000 = entries(10000); });
  // mul, add, tanh per step
  CHECK((e1000 - e100) == 3 * 900);
  CHECK((e10000 - e1000) == 3 * 9000);
  CHECK(e10000 == 3 * 10000);
}

// ---------------------------------------------------------------------------------------------
// Double backward
// ---------------------------------------------------------------------------------------------

TEST_CASE("tape: double backward: f = Σ x³ gives the Hessian-vector product 6 x ⊙ v") {
  Tape tape;
  const std::vector<double> xv{0.5, -1.2, 2.0}, vv{0.3, 0.9, -0.4};
  Tensor x = param(xv, {3});
  Tensor v = f64(vv, {3});
  Tensor f;
  SUBCASE("as x * x * x") { f = sum(x * x * x); }
  SUBCASE("as pow(x, 3)") { f = sum(pow(x, 3.0)); }
  std::vector<Tensor> g = grad({f}, {x}, {}, SweepOptions{.create_graph = true});
  REQUIRE(g.size() == 1);
  CHECK(g[0].requires_grad());
  check_values(g[0], elementwise(xv, [](double a, std::size_t) { return 3 * a * a; }), "∇f = 3x²");
  std::vector<Tensor> hv = grad({sum(g[0] * v)}, {x});
  check_values(hv[0], elementwise(xv, [&](double a, std::size_t i) { return 6 * a * vv[i]; }), "H·v = 6x⊙v");
  CHECK_FALSE(x.grad().defined());  // grad() never touches .grad()
}

TEST_CASE("tape: double backward through f = Σ tanh(W x): hand-derived H·v, and gradgradcheck") {
  // y = tanh(W x), s = 1 − y²:  ∇ₓf = Wᵀ s;  Hₓₓ v = Wᵀ (−2 y ⊙ s ⊙ (W v))
  const std::vector<double> wv{0.5, -0.3, 0.8, 0.2, -0.6, 0.4};  // W (3, 2)
  const std::vector<double> xv{0.7, -0.4}, vv{1.0, -2.5};
  {
    Tape tape;
    Tensor W = param(wv, {3, 2});
    Tensor x = param(xv, {2, 1});
    Tensor gx = grad({sum(tanh(matmul(W, x)))}, {x}, {}, SweepOptions{.create_graph = true})[0];
    const std::vector<double> gx_got = gx.to_vector();  // gx lives on the tape: read it before the next sweep clears it
    Tensor hv = grad({sum(gx * f64(vv, {2, 1}))}, {x})[0];

    std::vector<double> y(3), s(3), wvv(3), gx_want(2, 0.0), hv_want(2, 0.0);
    for (std::size_t i = 0; i < 3; ++i) {
      y[i] = std::tanh(wv[i * 2] * xv[0] + wv[i * 2 + 1] * xv[1]);
      s[i] = 1 - y[i] * y[i];
      wvv[i] = wv[i * 2] * vv[0] + wv[i * 2 + 1] * vv[1];
    }
    for (std::size_t j = 0; j < 2; ++j)
      for (std::size_t i = 0; i < 3; ++i) {
        gx_want[j] += wv[i * 2 + j] * s[i];
        hv_want[j] += wv[i * 2 + j] * (-2 * y[i] * s[i] * wvv[i]);
      }
    check_values(f64(gx_got, {2, 1}), gx_want, "∇ₓf");
    check_values(hv, hv_want, "Hₓₓ·v");
  }
  Tensor W = param(wv, {3, 2}).set_name("W");
  Tensor x = param(xv, {2, 1}).set_name("x");
  GradcheckReport report =
      gradgradcheck([](const std::vector<Tensor>& in) { return sum(tanh(matmul(in[0], in[1]))); }, {W, x});
  INFO(report.str());
  CHECK(report.ok());
  CHECK(report.inputs.size() == 2);
}

TEST_CASE("tape: backward(create_graph) leaves gradients with history that can be differentiated") {
  Tape tape;
  const std::vector<double> xv{0.5, -1.2, 2.0}, vv{0.3, 0.9, -0.4};
  Tensor x = param(xv, {3});
  Tensor v = f64(vv, {3});
  backward(sum(x * x * x), Tensor(), SweepOptions{.create_graph = true});
  Tensor g = x.grad();
  REQUIRE(g.defined());
  CHECK(g.requires_grad());
  CHECK_FALSE(g.is_leaf());
  CHECK(tape.size() > 0);  // create_graph implies retain
  const std::vector<double> g_want = elementwise(xv, [](double a, std::size_t) { return 3 * a * a; });
  const std::vector<double> hv_want = elementwise(xv, [&](double a, std::size_t i) { return 6 * a * vv[i]; });
  check_values(g, g_want, "∇f = 3x²");

  SUBCASE("zero_grad then differentiate the held gradient: .grad() = H·v") {
    x.zero_grad();  // a gradient with history is dropped, not zeroed in place
    CHECK_FALSE(x.grad().defined());
    backward(sum(g * v));
    check_values(x.grad(), hv_want, "H·v");
  }
  SUBCASE("without zero_grad the second backward accumulates: .grad() = 3x² + H·v") {
    backward(sum(g * v));
    check_values(x.grad(), elementwise(g_want, [&](double a, std::size_t i) { return a + hv_want[i]; }), "3x² + H·v");
  }
  // The sweep cleared the tape; the gradient kept its value as a constant (keep_on_clear).
  CHECK(tape.size() == 0);
  CHECK_FALSE(g.requires_grad());
  check_values(g, g_want, "∇f after the clear");
}

TEST_CASE("tape: gradients left by backward(create_graph) belong to their leaf alone") {
  // y = a + b sends the same adjoint to both operands; each .grad() must still be its own tensor,
  // or zero_grad() / a later += on one would change the other (and the caller's seed).
  Tape tape;
  Tensor a = param({1.0, 2.0}, {2});
  Tensor b = param({3.0, 4.0}, {2});
  Tensor w = param({5.0, -6.0}, {2});
  SUBCASE("constant gradients (the seed itself reaches the leaves)") {
    Tensor seed = f64({0.5, -1.5}, {2});
    backward(a + b, seed, SweepOptions{.create_graph = true});
    CHECK_FALSE(a.grad().same(b.grad()));
    CHECK_FALSE(a.grad().same(seed));
    a.zero_grad();
    check_values(b.grad(), {0.5, -1.5}, "b.grad() after a.zero_grad()");
    check_values(seed, {0.5, -1.5}, "the caller's seed");
    backward(sum(a * 2.0));
    check_values(a.grad(), {2.0, 2.0}, "a.grad()");
    check_values(b.grad(), {0.5, -1.5}, "b.grad() after a backward into a");
  }
  SUBCASE("gradients with history, kept past the clear") {
    // d Σ (a + b) ⊙ w / da = w = d/db
    backward(sum((a + b) * w), Tensor(), SweepOptions{.create_graph = true});
    CHECK(a.grad().requires_grad());
    CHECK_FALSE(a.grad().same(b.grad()));
    tape.clear();
    a.zero_grad();
    check_values(a.grad(), {0.0, 0.0}, "a.grad() after zero_grad");
    check_values(b.grad(), {5.0, -6.0}, "b.grad() after a.zero_grad()");
    backward(sum(a * 2.0));
    check_values(a.grad(), {2.0, 2.0}, "a.grad()");
    check_values(b.grad(), {5.0, -6.0}, "b.grad() after a backward into a");
  }
}

// ---------------------------------------------------------------------------------------------
// grad()
// ---------------------------------------------------------------------------------------------

TEST_CASE("tape: grad() w.r.t. intermediates and leaves, leaving .grad() alone — allow_unused") {
  Tape tape;
  const std::vector<double> xv{0.4, -0.9, 1.3}, wv{1.1, 0.5, -0.7}, c{0.6, -1.4, 2.0};
  Tensor x = param(xv, {3}).set_name("x");
  Tensor w = param(wv, {3}).set_name("w");
  Tensor unused = param({1.0}, {1}).set_name("unused");
  Tensor u, loss;
  auto forward = [&] {
    u = x * w;
    loss = sum(tanh(u) * f64(c, {3}));
  };
  // dloss/du = c ⊙ (1 − tanh²(u)); dloss/dx = that ⊙ w; dloss/dw = that ⊙ x
  std::vector<double> du(3), dx(3), dw(3);
  for (std::size_t i = 0; i < 3; ++i) {
    const double t = std::tanh(xv[i] * wv[i]);
    du[i] = c[i] * (1 - t * t);
    dx[i] = du[i] * wv[i];
    dw[i] = du[i] * xv[i];
  }

  SUBCASE("w.r.t. an intermediate") {
    forward();
    std::vector<Tensor> g = grad({loss}, {u});
    check_values(g[0], du, "dloss/du");
    CHECK(tape.size() == 0);
  }
  SUBCASE("w.r.t. leaves: returned, not accumulated") {
    w.set_grad(f64({9, 9, 9}, {3}));
    forward();
    std::vector<Tensor> g = grad({loss}, {x, w, u});
    check_values(g[0], dx, "dloss/dx");
    check_values(g[1], dw, "dloss/dw");
    check_values(g[2], du, "dloss/du");
    CHECK_FALSE(x.grad().defined());
    check_values(w.grad(), {9, 9, 9}, "w.grad() untouched");
  }
  SUBCASE("an unreachable input is an error naming it, unless allow_unused") {
    forward();
    const std::string msg = message_of<TapeError>([&] { grad({loss}, {x, unused}, {}, SweepOptions{.retain = true}); });
    CHECK_CONTAINS(msg, "input 1");
    CHECK_CONTAINS(msg, "'unused'");
    CHECK_CONTAINS(msg, "not reachable");
    CHECK_CONTAINS(msg, "allow_unused");
    std::vector<Tensor> g = grad({loss}, {x, unused}, {}, {}, /*allow_unused=*/true);
    REQUIRE(g.size() == 2);
    check_values(g[0], dx, "dloss/dx");
    CHECK_FALSE(g[1].defined());
  }
  SUBCASE("an input that does not require a gradient is an error") {
    forward();
    Tensor k = f64({1, 2, 3}, {3}).set_name("k");
    const std::string msg = message_of<TapeError>([&] { grad({loss}, {k}); });
    CHECK_CONTAINS(msg, "'k'");
    CHECK_CONTAINS(msg, "does not require a gradient");
  }
}

// ---------------------------------------------------------------------------------------------
// Custom ops
// ---------------------------------------------------------------------------------------------

namespace {

// y = x³;  dx += dy ⊙ 3x²  — written with rewind ops, so it differentiates again.
Tensor cube(const Tensor& x) {
  return custom_op(
      "cube", {x}, [](const std::vector<Tensor>& in) { return in[0] * in[0] * in[0]; },
      [](BackwardContext& c) { c.accumulate(0, c.grad_out() * 3.0 * c.input(0) * c.input(0)); }, "dx += dy⊙3x²");
}

// z = a ⊙ b (same shapes);  da += dz ⊙ b;  db += dz ⊙ a
struct MyMul {
  static constexpr const char* name = "my_mul";
  static constexpr const char* rule = "da += dz⊙b; db += dz⊙a";
  static Tensor forward(const std::vector<Tensor>& in) { return in[0] * in[1]; }
  static void backward(BackwardContext& c) {
    if (c.needs_grad(0)) c.accumulate(0, c.grad_out() * c.input(1));
    if (c.needs_grad(1)) c.accumulate(1, c.grad_out() * c.input(0));
  }
};

}  // namespace

TEST_CASE("tape: custom_op with lambdas joins the tape and the sweep") {
  Tape tape;
  const std::vector<double> xv{0.5, -0.8, 1.1}, c{1.0, -0.5, 0.25};
  Tensor x = param(xv, {3});
  Tensor y = cube(x);
  CHECK(y.requires_grad());
  REQUIRE(y.tape_index() >= 0);
  CHECK(std::string(tape[static_cast<std::size_t>(y.tape_index())].op) == "cube");
  CHECK(std::string(tape[static_cast<std::size_t>(y.tape_index())].rule) == "dx += dy⊙3x²");
  CHECK(tape.size() == 1);  // the forward's own ops ran with recording off
  check_values(y, elementwise(xv, [](double a, std::size_t) { return a * a * a; }), "x³");
  // f = Σ c ⊙ tanh(x³):  df/dx = c ⊙ (1 − tanh²(x³)) ⊙ 3x²
  backward(sum(tanh(y) * f64(c, {3})));
  check_values(x.grad(), elementwise(xv, [&](double a, std::size_t i) {
                 const double t = std::tanh(a * a * a);
                 return c[i] * (1 - t * t) * 3 * a * a;
               }),
               "dx");
}

TEST_CASE("tape: a custom op's backward written with rwd ops supports double backward") {
  Tape tape;
  const std::vector<double> xv{0.5, -0.8, 1.1}, vv{2.0, 0.5, -1.0};
  Tensor x = param(xv, {3});
  Tensor g = grad({sum(cube(x))}, {x}, {}, SweepOptions{.create_graph = true})[0];
  check_values(g, elementwise(xv, [](double a, std::size_t) { return 3 * a * a; }), "d Σx³ = 3x²");
  Tensor h = grad({sum(g * f64(vv, {3}))}, {x})[0];
  check_values(h, elementwise(xv, [&](double a, std::size_t i) { return 6 * a * vv[i]; }), "d² Σx³ · v = 6x⊙v");
}

TEST_CASE("tape: the struct form apply<Op> records under the op's name and sends gradients by input") {
  Tape tape;
  const std::vector<double> av{0.5, -2.0}, bv{3.0, 0.25}, c{1.5, -1.0};
  Tensor a = param(av, {2});
  Tensor cc = f64(c, {2});
  SUBCASE("both inputs want gradients") {
    Tensor b = param(bv, {2});
    Tensor z = apply<MyMul>({a, b});
    CHECK(std::string(tape[static_cast<std::size_t>(z.tape_index())].op) == "my_mul");
    CHECK(std::string(tape[static_cast<std::size_t>(z.tape_index())].rule) == MyMul::rule);
    backward(sum(z * cc));
    check_values(a.grad(), {c[0] * bv[0], c[1] * bv[1]}, "da = c⊙b");
    check_values(b.grad(), {c[0] * av[0], c[1] * av[1]}, "db = c⊙a");
  }
  SUBCASE("a constant input gets none") {
    Tensor b = f64(bv, {2});
    backward(sum(apply<MyMul>({a, b}) * cc));
    check_values(a.grad(), {c[0] * bv[0], c[1] * bv[1]}, "da = c⊙b");
    CHECK_FALSE(b.grad().defined());
  }
}

TEST_CASE("tape: a custom op whose backward returns a wrong-shaped gradient is a ShapeError naming it") {
  Tape tape;
  Tensor x = param({1.0, 2.0, 3.0}, {3});
  Tensor y = custom_op(
      "bad_op", {x}, [](const std::vector<Tensor>& in) { return in[0] * 2.0; },
      [](BackwardContext& c) { c.accumulate(0, Tensor::ones({5}, float64)); });
  const std::string msg = message_of<ShapeError>([&] { backward(sum(y)); });
  CHECK_CONTAINS(msg, "bad_op");
  CHECK_CONTAINS(msg, "(3,)");
  CHECK_CONTAINS(msg, "(5,)");
  CHECK(GradMode::enabled());  // the failed sweep restored grad mode
}

// ---------------------------------------------------------------------------------------------
// Several outputs: one entry, one backward call
// ---------------------------------------------------------------------------------------------

namespace {

/// (s, p) = (a + b, a ⊙ b) as ONE entry:  da += ds + dp ⊙ b;  db += ds + dp ⊙ a. Counts its backward
/// calls and remembers the adjoints it was given.
struct SumProduct {
  int calls = 0;
  std::vector<Tensor> seen;  // grad_out(0), grad_out(1) of the last call
  std::vector<Tensor> operator()(const Tensor& a, const Tensor& b) {
    return custom_op_multi(
        "sum_product", {a, b}, [](const std::vector<Tensor>& in) { return std::vector<Tensor>{in[0] + in[1], in[0] * in[1]}; },
        [this](BackwardContext& c) {
          ++calls;
          seen = {c.grad_out(0).detach(), c.grad_out(1).detach()};
          const Tensor &ds = c.grad_out(0), &dp = c.grad_out(1);
          if (c.needs_grad(0)) c.accumulate(0, ds + dp * c.input(1));
          if (c.needs_grad(1)) c.accumulate(1, ds + dp * c.input(0));
        },
        "da += ds + dp⊙b; db += ds + dp⊙a");
  }
};

}  // namespace

TEST_CASE("tape: a two-output custom op is one entry whose outputs know their (entry, output index)") {
  Tape tape;
  SumProduct op;
  Tensor a = param({0.5, -1.0}, {2}), b = param({2.0, 0.25}, {2});
  const std::vector<Tensor> y = op(a, b);
  REQUIRE(y.size() == 2);
  CHECK(tape.size() == 1);
  CHECK(y[0].tape_index() == 0);
  CHECK(y[1].tape_index() == 0);
  CHECK(output_index(y[0]) == 0);
  CHECK(output_index(y[1]) == 1);
  CHECK(tape[0].num_outputs() == 2);
  CHECK(tape[0].output_at(1).same(y[1]));
  check_values(y[0], {2.5, -0.75}, "a + b");
  check_values(y[1], {1.0, -0.25}, "a ⊙ b");
  // The printed tape names the second output #0.1.
  Tensor z = y[1] * 3.0;
  CHECK_CONTAINS(print_tape(tape), "#0.1");
}

TEST_CASE("tape: a two-output custom op's backward runs once, with zeros for an output nothing used") {
  Tape tape;
  SumProduct op;
  const std::vector<double> av{0.5, -1.0}, bv{2.0, 0.25}, u{1.5, -2.0}, v{0.5, 3.0};
  Tensor a = param(av, {2}), b = param(bv, {2});
  SUBCASE("both outputs used, each twice") {
    const std::vector<Tensor> y = op(a, b);
    // L = Σ u⊙s + Σ v⊙p + Σ s⊙s:  dL/ds = u + 2s,  dL/dp = v
    backward(sum(y[0] * f64(u, {2})) + sum(y[1] * f64(v, {2})) + sum(y[0] * y[0]));
    CHECK(op.calls == 1);
    check_values(op.seen[0], {u[0] + 2 * (av[0] + bv[0]), u[1] + 2 * (av[1] + bv[1])}, "ds");
    check_values(op.seen[1], v, "dp");
    check_values(a.grad(), elementwise(av, [&](double x, std::size_t i) { return u[i] + 2 * (x + bv[i]) + v[i] * bv[i]; }), "da");
    check_values(b.grad(), elementwise(bv, [&](double x, std::size_t i) { return u[i] + 2 * (av[i] + x) + v[i] * av[i]; }), "db");
  }
  SUBCASE("only the second output used") {
    const std::vector<Tensor> y = op(a, b);
    backward(sum(y[1] * f64(v, {2})));
    CHECK(op.calls == 1);
    check_values(op.seen[0], {0.0, 0.0}, "ds (unused: zeros)");
    check_values(a.grad(), {v[0] * bv[0], v[1] * bv[1]}, "da = v⊙b");
    check_values(b.grad(), {v[0] * av[0], v[1] * av[1]}, "db = v⊙a");
  }
  SUBCASE("grad() collects the gradient of the second output itself") {
    const std::vector<Tensor> y = op(a, b);
    const std::vector<Tensor> g = grad({sum(y[1] * f64(v, {2}))}, {y[1], a});
    check_values(g[0], v, "d/dp");
    check_values(g[1], {v[0] * bv[0], v[1] * bv[1]}, "d/da");
  }
}

TEST_CASE("tape: a two-output custom op passes gradcheck and gradgradcheck with one or both outputs used") {
  SumProduct op;
  std::vector<Tensor> in = {f64({0.3, -0.7, 1.2}, {3}).set_requires_grad().set_name("a"),
                            f64({-0.4, 0.9, 0.6}, {3}).set_requires_grad().set_name("b")};
  const Tensor u = f64({1.5, -2.0, 0.5}, {3}), v = f64({0.5, 3.0, -1.0}, {3});
  const std::vector<std::pair<const char*, TensorFunction>> uses = {
      {"both", [&](const std::vector<Tensor>& x) {
         const std::vector<Tensor> y = op(x[0], x[1]);
         return sum(y[0] * y[0] * u) + sum(tanh(y[1]) * v);
       }},
      {"first only", [&](const std::vector<Tensor>& x) { return sum(tanh(op(x[0], x[1])[0]) * u); }},
      {"second only", [&](const std::vector<Tensor>& x) { return sum(op(x[0], x[1])[1] * op(x[0], x[1])[1] * v); }},
  };
  for (const auto& [name, f] : uses) {
    CAPTURE(name);
    const GradcheckReport r = gradcheck(f, in);
    CHECK_MESSAGE(r.ok(), r.str());
    const GradcheckReport r2 = gradgradcheck(f, in);  // the backward is written with rwd ops
    CHECK_MESSAGE(r2.ok(), r2.str());
  }
}

TEST_CASE("tape: record_multi rejects no outputs and the same tensor twice, naming the op") {
  Tape tape;
  Tensor a = param({1.0}, {1});
  Tensor y = f64({2.0}, {1});
  CHECK_CONTAINS(message_of<TapeError>([&] { record_multi("two", {a}, {}, "", [](BackwardContext&) {}); }), "two");
  CHECK_CONTAINS(message_of<TapeError>([&] { record_multi("twice", {a}, {y, y}, "", [](BackwardContext&) {}); }),
                 "outputs 0 and 1 are the same tensor");
}

// ---------------------------------------------------------------------------------------------
// A lean entry: the adjoints live in the sweep's side table, not on the tape
// ---------------------------------------------------------------------------------------------

TEST_CASE("tape: an entry holds only op, rule, inputs, outputs and backward — adjoints go to a SweepTrace") {
  // The layout, pinned: two names, the inputs, output 0, a pointer to any further outputs, the
  // backward (96 bytes with libstdc++: five entries to a 512-byte block of the tape's deque).
  CHECK(sizeof(Node) == 2 * sizeof(const char*) + sizeof(std::vector<Tensor>) + sizeof(Tensor) +
                            sizeof(std::unique_ptr<std::vector<Tensor>>) + sizeof(BackwardFn));
  Tape tape;
  Tensor x = param({0.5, -1.0}, {2});
  Tensor loss = sum(tanh(x) * x);  // #0 tanh, #1 mul, #2 sum
  CHECK(tape.last_trace() == nullptr);
  ReverseSweep sweep(loss, Tensor(), SweepOptions{.retain = true, .keep_adjoints = true});
  REQUIRE(sweep.trace() != nullptr);
  CHECK(tape.last_trace() == sweep.trace());  // the explain views find it through the tape
  REQUIRE(sweep.step());
  CHECK(sweep.current() == 2);
  REQUIRE(sweep.trace()->at(2) != nullptr);
  CHECK(sweep.trace()->at(2)->adjoints[0].same(sweep.adjoint_in()));
  CHECK(sweep.trace()->at(1) == nullptr);  // not reached yet
  sweep.run();
  REQUIRE(sweep.trace()->at(0) != nullptr);
  // #0 tanh received dL/d tanh = x and sent x ⊙ (1 − tanh² x) to x.
  check_values(sweep.trace()->at(0)->adjoints[0], {0.5, -1.0}, "tanh's dy");
  check_values(sweep.trace()->at(0)->sent[0],
               {0.5 * (1 - std::tanh(0.5) * std::tanh(0.5)), -1.0 * (1 - std::tanh(-1.0) * std::tanh(-1.0))}, "sent");
  tape.clear();
  CHECK(tape.last_trace() == nullptr);  // dropped with the entries
}

// ---------------------------------------------------------------------------------------------
// Tape scopes
// ---------------------------------------------------------------------------------------------

TEST_CASE("tape: a Tape scope is current inside, restores the previous one, and clears on exit") {
  Tape& outer = Tape::current();
  const std::size_t outer_size = outer.size();
  Tensor x = param({0.5, -1.5}, {2});
  Tensor kept;
  {
    Tape t;
    CHECK(&Tape::current() == &t);
    Tensor y = x * x;
    CHECK(t.size() == 1);
    CHECK(outer.size() == outer_size);
    {
      Tape inner;
      CHECK(&Tape::current() == &inner);
      const std::string msg = message_of<TapeError>([&] { (void)(y * x); });
      CHECK_CONTAINS(msg, "mul");
      CHECK_CONTAINS(msg, "another tape");
      // A detached copy is a plain leaf and can be used anywhere.
      Tensor z = y.detach() * x;
      CHECK(inner.size() == 1);
      backward(sum(z));
      check_values(x.grad(), {0.25, 2.25}, "d Σ stop(x²)·x = x²");
    }
    CHECK(&Tape::current() == &t);
    CHECK(t.size() == 1);  // the inner scope did not touch it
    kept = y;
  }
  CHECK(&Tape::current() == &outer);
  CHECK(outer.size() == outer_size);
  CHECK_CONTAINS(message_of<TapeError>([&] { (void)kept.to_vector(); }), "'mul'");
}

// ---------------------------------------------------------------------------------------------
// Dtypes
// ---------------------------------------------------------------------------------------------

TEST_CASE("tape: float32 end to end matches float64 gradients within 1e-5") {
  const std::vector<double> wv{0.5, -0.3, 0.8, 0.2, -0.6, 0.4}, xv{0.7, -0.4, 0.1, 0.9}, bv{0.1, -0.2, 0.3},
      c{1.0, -0.5, 0.3, 0.8, -1.2, 0.6};
  // f = Σ C ⊙ tanh(W x + b)² + Σ exp(x / 2)
  auto run = [&](Dtype dt) {
    Tape tape;
    Tensor W = Tensor::from_vector(wv, {3, 2}, dt).set_requires_grad();
    Tensor x = Tensor::from_vector(xv, {2, 2}, dt).set_requires_grad();
    Tensor b = Tensor::from_vector(bv, {3, 1}, dt).set_requires_grad();
    Tensor y = tanh(matmul(W, x) + b);
    Tensor f = sum(y * y * Tensor::from_vector(c, {3, 2}, dt)) + sum(exp(x / 2.0));
    CHECK(f.dtype() == dt);
    backward(f);
    for (const Tensor& p : {W, x, b}) CHECK(p.grad().dtype() == dt);
    return std::vector<Tensor>{W.grad(), x.grad(), b.grad()};
  };
  const std::vector<Tensor> g32 = run(float32), g64 = run(float64);
  const char* names[] = {"dW", "dx", "db"};
  for (std::size_t k = 0; k < 3; ++k) {
    const std::vector<double> a = g32[k].to_vector(), e = g64[k].to_vector();
    REQUIRE(a.size() == e.size());
    for (std::size_t i = 0; i < a.size(); ++i)
      CHECK_MESSAGE(std::abs(a[i] - e[i]) <= 1e-5 * std::abs(e[i]) + 1e-7,
                    names[k] << "[" << i << "]: float32 " << a[i] << ", float64 " << e[i]);
  }
}

TEST_CASE("tape: f32 + f64 is a DtypeError naming the op and both dtypes") {
  Tape tape;
  Tensor a = Tensor::ones({2}, float32).set_requires_grad();
  Tensor b = Tensor::ones({2}, float64);
  const std::string msg = message_of<DtypeError>([&] { (void)add(a, b); });
  CHECK_CONTAINS(msg, "add");
  CHECK_CONTAINS(msg, "float32");
  CHECK_CONTAINS(msg, "float64");
  const std::string mm = message_of<DtypeError>([&] { (void)matmul(Tensor::ones({2, 2}, float64), Tensor::ones({2, 2}, float32)); });
  CHECK_CONTAINS(mm, "matmul");
  CHECK_CONTAINS(mm, "float32");
  CHECK_CONTAINS(mm, "float64");
  CHECK(tape.size() == 0);
}

TEST_CASE("tape: grad(create_graph) gradients outlive the next sweep, and record onto the swept tape") {
  Tensor x = Tensor::from_vector(std::vector<double>{1.5, -2.0}, {2}, float64).set_requires_grad();
  Tensor g = grad({sum(x * x * x)}, {x}, {}, SweepOptions{.create_graph = true})[0];  // 3x²
  Tensor h = grad({sum(g)}, {x})[0];                                                // 6x, clears the tape
  CHECK(g.to_vector() == std::vector<double>{6.75, 12.0});  // still readable after that clear
  CHECK(h.to_vector() == std::vector<double>{9.0, -12.0});
  // A loss recorded on the outer tape, differentiated with create_graph from inside another Tape
  // scope: the backward computation is recorded on the outer tape (the one swept), so the gradient
  // belongs there — using it in the inner scope is the usual mixing error, and outside it works.
  Tensor y = sum(x * x * x);
  Tensor gy;
  {
    Tape inner;
    gy = grad({y}, {x}, {}, SweepOptions{.create_graph = true})[0];
    CHECK(inner.empty());
    CHECK_THROWS_AS(sum(gy), TapeError);
  }
  CHECK(grad({sum(gy)}, {x})[0].to_vector() == std::vector<double>{9.0, -12.0});
}

TEST_CASE("tape: the loss stays readable after backward() clears the tape") {
  Tensor w = Tensor::scalar(3.0, float64).set_requires_grad();
  Tensor loss = w * w;
  loss.backward();
  CHECK(loss.item() == 9.0);  // PyTorch habit: print the loss after backward
  CHECK(loss.is_leaf());      // a constant now: its history went with the tape
  Tensor mid = w * 2.0, top = sum(mid * mid);
  top.backward();
  CHECK_THROWS_AS(mid.item(), TapeError);  // only the root is kept
}

TEST_CASE("tape: slice gradients are added into their region in place, and a custom op's region is checked") {
  // 300 slices of one recorded tensor: each step's gradient lands in its own row.
  Tensor x = Tensor::uniform({300, 4}, -1, 1, float64).set_requires_grad();
  Tensor total = Tensor::scalar(0.0, float64);
  for (std::size_t t = 0; t < 300; ++t) total = total + sum(slice(tanh(x), 0, t, t + 1) * static_cast<double>(t));
  total.backward();
  Tensor y = tanh(x.detach());
  for (std::size_t t = 0; t < 300; t += 37)
    for (std::size_t k = 0; k < 4; ++k)
      CHECK(x.grad().at({t, k}) == doctest::Approx(static_cast<double>(t) * (1 - y.at({t, k}) * y.at({t, k}))));
  // A custom op whose backward claims a region that does not fit is refused, not written out of bounds.
  Tensor w = Tensor::ones({3, 2}, float64).set_requires_grad();
  Tensor out = custom_op(
      "bad_region", {w}, [](const std::vector<Tensor>& in) { return sum(in[0]); },
      [](BackwardContext& c) { c.accumulate_slice(0, Tensor::ones({2, 2}, float64), 0, 2, 4, 1); });
  CHECK_THROWS_AS(out.backward(), ShapeError);
}

TEST_CASE("tape: differentiating a gradient computed without create_graph says to use create_graph") {
  Tape tape;
  Tensor x = Tensor::from_vector(std::vector<double>{0.5, -1.5}, {2}, float64).set_requires_grad();
  const Tensor g = grad({sum(x * x * x)}, {x})[0];  // a plain gradient: a constant
  const std::string m = message_of<TapeError>([&] { grad({sum(g)}, {x}); });
  CHECK_CONTAINS(m, "does not require a gradient");
  CHECK_CONTAINS(m, "create_graph");
  // With create_graph the same second derivative works: d/dx Σ 3x² = 6x.
  const Tensor g2 = grad({sum(x * x * x)}, {x}, {}, SweepOptions{.create_graph = true})[0];
  CHECK(grad({sum(g2)}, {x})[0].to_vector() == std::vector<double>{3.0, -9.0});
}
