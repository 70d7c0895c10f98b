// Backpropagation through time falls out of the tape: a 3-step tanh RNN written by hand from
// primitives, in the seeds' formulation (column vectors, (features, batch) layout):
//
//   h_t = tanh(W_x x_t + W_h h_{t−1} + b)        W_x (5, 2), W_h (5, 5), b (5, 1), x_t (2, 3), h_t (5, 3)
//   y_t = W_y h_t + b_y                          W_y (1, 5), b_y (1, 1), y_t (1, 3)
//
// Gradients w.r.t. every weight, every input x_1..x_3 and the initial state h_0 are checked by
// central differences (gradcheck) under two losses, and once against the textbook BPTT recursion
// written in plain C++ loops — code that shares nothing with the tape.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include <rewind.hpp>

using namespace rwd;

namespace {

constexpr std::size_t n_in = 2, n_hidden = 5, n_out = 1, n_batch = 3, n_steps = 3;

enum class Loss { last, all };

// Fixed, asymmetric loss weights c_t (1, batch) per step (STYLE rule 12): L = Σ_t Σ c_t ⊙ y_t, with
// c_t = 0 for t < 3 under Loss::last.
std::vector<double> loss_weights(Loss loss, std::size_t t) {
  static const double w[n_steps][n_batch] = {{0.7, -1.3, 0.4}, {-0.2, 0.9, 1.6}, {1.1, 0.35, -0.8}};
  std::vector<double> c(w[t], w[t] + n_batch);
  if (loss == Loss::last && t + 1 < n_steps) c.assign(n_batch, 0.0);
  return c;
}

/// The inputs, in order: W_x, W_h, b, W_y, b_y, x_1, x_2, x_3, h_0.
std::vector<Tensor> make_inputs(Dtype dtype, std::uint32_t seed) {
  Generator gen(seed);
  auto draw = [&](const Shape& s, double scale, const char* name) {
    Tensor t = Tensor::randn(s, gen, float64) * scale;  // drawn in float64, converted once
    return Tensor::from_vector(t.to_vector(), s, dtype).set_requires_grad().set_name(name);
  };
  return {draw({n_hidden, n_in}, 0.6, "W_x"),  draw({n_hidden, n_hidden}, 0.4, "W_h"),
          draw({n_hidden, 1}, 0.3, "b"),       draw({n_out, n_hidden}, 0.6, "W_y"),
          draw({n_out, 1}, 0.3, "b_y"),        draw({n_in, n_batch}, 1.0, "x_1"),
          draw({n_in, n_batch}, 1.0, "x_2"),   draw({n_in, n_batch}, 1.0, "x_3"),
          draw({n_hidden, n_batch}, 0.5, "h_0")};
}

/// The RNN unrolled over three steps, from primitives only, and the scalar loss.
Tensor rnn_loss(const std::vector<Tensor>& in, Loss loss) {
  const Tensor &W_x = in[0], &W_h = in[1], &b = in[2], &W_y = in[3], &b_y = in[4];
  Tensor h = in[8];
  Tensor L;
  for (std::size_t t = 0; t < n_steps; ++t) {
    const Tensor& x = in[5 + t];
    h = tanh(matmul(W_x, x) + matmul(W_h, h) + b);
    Tensor y = matmul(W_y, h) + b_y;
    if (loss == Loss::last && t + 1 < n_steps) continue;
    Tensor term = sum(y * Tensor::from_vector(loss_weights(loss, t), {n_out, n_batch}, W_x.dtype()));
    L = L.defined() ? L + term : term;
  }
  return L;
}

// ---- the textbook BPTT, in plain loops over row-major std::vector<double> ----

using Mat = std::vector<double>;  // row-major, dimensions carried alongside

// C (m, n) = A (m, k) · B (k, n)
Mat mm(const Mat& A, const Mat& B, std::size_t m, std::size_t k, std::size_t n) {
  Mat C(m * n, 0.0);
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t p = 0; p < k; ++p)
      for (std::size_t j = 0; j < n; ++j) C[i * n + j] += A[i * k + p] * B[p * n + j];
  return C;
}
// C (k, n) = Aᵀ · B with A (m, k), B (m, n)
Mat mm_tn(const Mat& A, const Mat& B, std::size_t m, std::size_t k, std::size_t n) {
  Mat C(k * n, 0.0);
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t p = 0; p < k; ++p)
      for (std::size_t j = 0; j < n; ++j) C[p * n + j] += A[i * k + p] * B[i * n + j];
  return C;
}
// C (m, k) += A (m, n) · Bᵀ with B (k, n)
void add_mm_nt(Mat& C, const Mat& A, const Mat& B, std::size_t m, std::size_t n, std::size_t k) {
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t p = 0; p < k; ++p)
      for (std::size_t j = 0; j < n; ++j) C[i * k + p] += A[i * n + j] * B[p * n + j];
}

/// Gradients of the loss w.r.t. the same nine inputs, by the BPTT recursion:
///   dy_t = c_t;  dW_y += dy_t h_tᵀ;  db_y += Σ_batch dy_t
///   dh_t = W_yᵀ dy_t + W_hᵀ da_{t+1};  da_t = dh_t ⊙ (1 − h_t²)
///   dW_x += da_t x_tᵀ;  dW_h += da_t h_{t−1}ᵀ;  db += Σ_batch da_t;  dx_t = W_xᵀ da_t;  dh_0 = W_hᵀ da_1
std::vector<Mat> bptt_by_hand(const std::vector<Mat>& in, Loss loss) {
  const Mat &W_x = in[0], &W_h = in[1], &b = in[2], &W_y = in[3], &b_y = in[4];
  const std::size_t H = n_hidden, B = n_batch, I = n_in, O = n_out;
  // Forward, keeping every h_t.
  std::vector<Mat> h{in[8]};
  for (std::size_t t = 0; t < n_steps; ++t) {
    Mat a = mm(W_x, in[5 + t], H, I, B);
    const Mat wh = mm(W_h, h.back(), H, H, B);
    for (std::size_t i = 0; i < H; ++i)
      for (std::size_t j = 0; j < B; ++j) a[i * B + j] = std::tanh(a[i * B + j] + wh[i * B + j] + b[i]);
    h.push_back(a);
  }
  (void)b_y;  // the output bias does not enter any derivative
  std::vector<Mat> g(9);
  g[0].assign(H * I, 0.0);
  g[1].assign(H * H, 0.0);
  g[2].assign(H, 0.0);
  g[3].assign(O * H, 0.0);
  g[4].assign(O, 0.0);
  Mat dh_next(H * B, 0.0);  // W_hᵀ da_{t+1}
  for (std::size_t s = n_steps; s-- > 0;) {
    const Mat dy = loss_weights(loss, s);  // (O, B)
    const Mat& hs = h[s + 1];
    add_mm_nt(g[3], dy, hs, O, B, H);
    for (std::size_t o = 0; o < O; ++o)
      for (std::size_t j = 0; j < B; ++j) g[4][o] += dy[o * B + j];
    Mat dh = mm_tn(W_y, dy, O, H, B);
    Mat da(H * B);
    for (std::size_t k = 0; k < H * B; ++k) da[k] = (dh[k] + dh_next[k]) * (1 - hs[k] * hs[k]);
    add_mm_nt(g[0], da, in[5 + s], H, B, I);
    add_mm_nt(g[1], da, h[s], H, B, H);
    for (std::size_t i = 0; i < H; ++i)
      for (std::size_t j = 0; j < B; ++j) g[2][i] += da[i * B + j];
    g[5 + s] = mm_tn(W_x, da, H, I, B);
    dh_next = mm_tn(W_h, da, H, H, B);
  }
  g[8] = dh_next;
  return g;
}

void check_report(const GradcheckReport& report, std::size_t n_inputs) {
  INFO(report.str());
  CHECK(report.ok());
  REQUIRE(report.inputs.size() == n_inputs);
  for (const InputReport& r : report.inputs) {
    INFO("input " << r.name);
    CHECK(r.n_checked == r.shape.numel());
    CHECK(r.n_failed == 0);
  }
}

}  // namespace

TEST_CASE("bptt: 3-step tanh RNN from primitives, float64, every gradient by finite differences") {
  Tape tape;
  const std::vector<Tensor> inputs = make_inputs(float64, 7);
  SUBCASE("loss: last output only") {
    check_report(gradcheck([](const std::vector<Tensor>& in) { return rnn_loss(in, Loss::last); }, inputs), 9);
  }
  SUBCASE("loss: weighted sum of all outputs") {
    check_report(gradcheck([](const std::vector<Tensor>& in) { return rnn_loss(in, Loss::all); }, inputs), 9);
  }
  CHECK(tape.size() == 0);  // every sweep cleared its tape
}

TEST_CASE("bptt: the tape's gradients equal the textbook BPTT recursion, element by element") {
  for (Loss loss : {Loss::last, Loss::all}) {
    INFO((loss == Loss::last ? "loss: last output" : "loss: sum of all outputs"));
    Tape tape;
    const std::vector<Tensor> inputs = make_inputs(float64, 11);
    backward(rnn_loss(inputs, loss));
    CHECK(tape.size() == 0);

    std::vector<Mat> values;
    for (const Tensor& t : inputs) values.push_back(t.to_vector());
    const std::vector<Mat> want = bptt_by_hand(values, loss);
    for (std::size_t k = 0; k < inputs.size(); ++k) {
      const Tensor g = inputs[k].grad();
      REQUIRE_MESSAGE(g.defined(), inputs[k].name() << " has no gradient");
      const std::vector<double> got = g.to_vector();
      REQUIRE(got.size() == want[k].size());
      double largest = 0;
      for (std::size_t i = 0; i < got.size(); ++i) {
        largest = std::max(largest, std::abs(want[k][i]));
        CHECK_MESSAGE(std::abs(got[i] - want[k][i]) <= 1e-12 + 1e-10 * std::abs(want[k][i]),
                      "d" << inputs[k].name() << "[" << i << "]: tape " << got[i] << ", BPTT " << want[k][i]);
      }
      // The gradient is not trivially zero (under the last-output loss, x_1 still reaches y_3 through h).
      CHECK_MESSAGE(largest > 1e-3, "d" << inputs[k].name() << " is (nearly) zero: the check would be vacuous");
    }
  }
}

TEST_CASE("bptt: the float32 RNN checked against its float64 shadow by gradcheck") {
  Tape tape;
  const std::vector<Tensor> inputs = make_inputs(float32, 7);
  for (const Tensor& t : inputs) REQUIRE(t.dtype() == float32);
  SUBCASE("loss: last output only") {
    const GradcheckReport report =
        gradcheck([](const std::vector<Tensor>& in) { return rnn_loss(in, Loss::last); }, inputs);
    check_report(report, 9);
    for (const InputReport& r : report.inputs) CHECK_MESSAGE(r.was_float32, r.name << " was not seen as float32");
  }
  SUBCASE("loss: weighted sum of all outputs") {
    const GradcheckReport report =
        gradcheck([](const std::vector<Tensor>& in) { return rnn_loss(in, Loss::all); }, inputs);
    check_report(report, 9);
    for (const InputReport& r : report.inputs) CHECK_MESSAGE(r.was_float32, r.name << " was not seen as float32");
  }
  // gradcheck restored the inputs to float32.
  for (const Tensor& t : inputs) CHECK(t.dtype() == float32);
}
