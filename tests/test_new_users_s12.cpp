// What new users coming from PyTorch, Keras and Flux ran into (session 12): each case is the smallest
// program that showed it, with the behaviour those libraries (and rewind's own docs) promise.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include <rewind.hpp>

#include "support.hpp"

using namespace rwd;

namespace {

// softmax over axis `axis` of a 3-D tensor, by loops (the reference).
std::vector<double> softmax_by_hand(const Tensor& x, int axis) {
  const Shape s = x.shape();
  const std::vector<double> v = x.to_vector();
  std::vector<double> out(v.size());
  auto at = [&](std::size_t i, std::size_t j, std::size_t k) { return (i * s[1] + j) * s[2] + k; };
  for (std::size_t i = 0; i < s[0]; ++i)
    for (std::size_t j = 0; j < s[1]; ++j)
      for (std::size_t k = 0; k < s[2]; ++k) {
        const std::size_t n = s[axis];
        double total = 0;
        for (std::size_t m = 0; m < n; ++m)
          total += std::exp(v[axis == 0 ? at(m, j, k) : axis == 1 ? at(i, m, k) : at(i, j, m)]);
        out[at(i, j, k)] = std::exp(v[at(i, j, k)]) / total;
      }
  return out;
}

void check_close(const std::vector<double>& a, const std::vector<double>& b, double tol) {
  REQUIRE(a.size() == b.size());
  std::size_t worst = 0;
  double worst_err = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (const double err = std::abs(a[i] - b[i]) / std::max(1.0, std::abs(b[i])); err > worst_err) worst = i, worst_err = err;
  INFO("element " << worst << ": " << a[worst] << " against " << b[worst]);
  CHECK(worst_err <= tol);
}

}  // namespace

// Keras' softmax activation normalises the features (its last axis) of every step; rewind's layout
// puts a sequence's features on axis 1 of (time, features, batch). Act("softmax") normalised axis 0 —
// over time — so Chain(LSTM(…), Act("softmax")) gave every step "probabilities" that did not sum to 1.
TEST_CASE("new users: softmax and log_softmax activations of a (time, features, batch) sequence normalise its features") {
  Generator gen(1);
  const Tensor seq = Tensor::uniform({5, 4, 3}, -2, 2, gen, float64);
  const std::vector<double> want = softmax_by_hand(seq, 1);
  check_close(Act("softmax")(seq).to_vector(), want, 1e-12);
  std::vector<double> from_log = exp(Act("log_softmax")(seq)).to_vector();
  check_close(from_log, want, 1e-12);
  // A (features, batch) step and a (features,) vector keep axis 0.
  const Tensor step = reshape(slice(seq, 0, 2, 3), {4, 3});
  check_close(Act("softmax")(step).to_vector(), softmax(step, 0).to_vector(), 1e-15);
  const Tensor vec = reshape(slice(step, 1, 0, 1), {4});
  check_close(Act("softmax")(vec).to_vector(), softmax(vec, 0).to_vector(), 1e-15);
  // After a recurrent layer in a Chain, as a Keras user stacks them.
  Chain m(LSTM(4, 6, {.dtype = float64}, {}, gen), Act("softmax"));
  const Tensor p = m(seq);
  const std::vector<double> sums = sum(p, {1}).to_vector();
  for (double s : sums) CHECK(s == doctest::Approx(1.0).epsilon(1e-12));
  // Where no axis is the features, the activation says so instead of picking one.
  CHECK_THROWS_AS(Act("softmax")(Tensor::zeros({2, 2, 2, 2}, float64)), ShapeError);
}

// PyTorch's nn.LayerNorm(features) normalises the feature axis whatever the leading axes are, and
// Keras' LayerNormalization the last; Dropout and the activations take a (time, features, batch)
// sequence in rewind, but LayerNorm refused it. Each step must be normalised as that step alone.
TEST_CASE("new users: LayerNorm of a (time, features, batch) sequence normalises each step's features") {
  Generator gen(2);
  LayerNorm ln(4, 1e-5, true, float64);
  ln.weight.assign(Tensor::uniform({4}, 0.5, 1.5, gen, float64));
  ln.bias.assign(Tensor::uniform({4}, -0.5, 0.5, gen, float64));
  const Tensor seq = Tensor::uniform({5, 4, 3}, -2, 2, gen, float64).set_requires_grad().set_name("seq");
  const Tensor y = ln(seq);
  REQUIRE(y.shape() == Shape{5, 4, 3});
  for (std::size_t t = 0; t < 5; ++t) {
    NoGradGuard no_grad;
    const Tensor step = reshape(slice(seq.detach(), 0, t, t + 1), {4, 3});
    check_close(reshape(slice(y.detach(), 0, t, t + 1), {4, 3}).to_vector(), ln(step).to_vector(), 1e-14);
  }
  CHECK(gradcheck([&](const std::vector<Tensor>&) { return ln(seq); }, {seq, ln.weight, ln.bias}).ok());
  // A sequence whose features are not the layer's is named with both shapes.
  try {
    ln(Tensor::zeros({5, 3, 4}, float64));
    FAIL("no error");
  } catch (const ShapeError& e) {
    const std::string what = e.what();
    CHECK(what.find("LayerNorm(4)") != std::string::npos);
    CHECK(what.find("(5, 3, 4)") != std::string::npos);
  }
}

// The other options' errors name the layer (RNN(4 => 8, tanh): recurrent_dropout must be …); dropout's
// said only "Recurrent".
TEST_CASE("new users: an out-of-range dropout names the recurrent layer") {
  try {
    LSTM(3, 4, {}, {.num_layers = 2, .dropout = -0.1});
    FAIL("no error");
  } catch (const ValueError& e) {
    const std::string what = e.what();
    CHECK(what.find("LSTM(3 => 4") != std::string::npos);
    CHECK(what.find("dropout must be in [0, 1), got -0.1") != std::string::npos);
  }
}

// A Flux user keeps a handle on a layer and puts it in a Chain: `Recur r(cell); Chain m(r, Dense(…))`.
// Modules cannot be copied, so that cannot compile — but the constructors accepted any argument and
// failed deep inside std::make_shared. They now take only what they can hold (a temporary or
// std::move'd module, a shared_ptr, an activation), so the mistake is refused at the call.
TEST_CASE("new users: Chain, Recur and TimeDistributed refuse a named module (an lvalue) at the call") {
  CHECK_FALSE(std::is_constructible_v<Chain, Dense&>);
  CHECK_FALSE(std::is_constructible_v<Chain, Dense&, Dense>);
  CHECK_FALSE(std::is_constructible_v<Chain, const Dense&>);
  CHECK_FALSE(std::is_constructible_v<TimeDistributed, Dense&>);
  CHECK_FALSE(std::is_constructible_v<Recur, LSTMCell&>);
  // What they do take still builds.
  CHECK(std::is_constructible_v<Chain, Dense, Dense>);
  CHECK(std::is_constructible_v<Chain, Dense&&, const char*>);
  CHECK(std::is_constructible_v<Chain, std::shared_ptr<Dense>&, Activation>);
  CHECK(std::is_constructible_v<Chain, Recurrent, TimeDistributed>);
  CHECK(std::is_constructible_v<TimeDistributed, Dense>);
  CHECK(std::is_constructible_v<TimeDistributed, std::shared_ptr<Dense>>);
  CHECK(std::is_constructible_v<Recur, LSTMCell>);
  CHECK(std::is_constructible_v<Recur, std::shared_ptr<LSTMCell>&>);
  auto dense = std::make_shared<Dense>(2, 3);
  Chain m(dense, "relu", Dense(3, 1));
  CHECK(m.repr() == "Chain(Dense(2 => 3), relu, Dense(3 => 1))");
  Dense named(3, 1);
  TimeDistributed per_step(std::move(named));
  Recur stepper(LSTMCell(2, 3));
  CHECK(Chain(std::move(stepper), std::move(per_step)).repr() == "Chain(Recur(LSTMCell(2 => 3)), TimeDistributed(Dense(3 => 1)))");
}

// A loss left unreduced (Reduction::none) reached fit's `loss.item()` and failed as "item: input (1, 4):
// only a one-element tensor converts to a number", naming neither fit nor the batch; an undefined loss
// said only "tensor: this tensor is undefined". (PyTorch: "grad can be implicitly created only for
// scalar outputs".) Both are refused before anything runs backward, naming where and what.
TEST_CASE("new users: fit and train_truncated name the batch or step whose loss is not one number") {
  Dense d(2, 1, {}, true, float64);
  SGD opt(d.parameters(), {.lr = 0.1});
  const Tensor x = Tensor::ones({2, 4}, float64), y = Tensor::zeros({1, 4}, float64);
  const std::vector<double> before = d.weight.to_vector();
  auto unreduced = [&](std::size_t, std::size_t) { return mse_loss(d(x), y, {.reduction = Reduction::none}); };
  CHECK_THROWS_WITH_AS(fit(opt, 2, unreduced, {.epochs = 1}),
                       doctest::Contains("fit: epoch 1, batch 1: the loss is (1, 4)"), ShapeError);
  CHECK_THROWS_WITH_AS(fit(opt, 2, [](std::size_t, std::size_t) { return Tensor(); }, {.epochs = 1}),
                       doctest::Contains("fit: epoch 1, batch 1: the loss is undefined"), ValueError);
  CHECK_THROWS_WITH_AS(train_truncated(d, opt, 3, [&](std::size_t) { return mse_loss(d(x), y, {.reduction = Reduction::none}); }),
                       doctest::Contains("train_truncated: step 1: the loss is (1, 4)"), ShapeError);
  CHECK(d.weight.to_vector() == before);  // nothing stepped
}

// clip_norm = −1 (a typo for 1) turned clipping off without a word: fit and train_truncated clip only
// when clip_norm > 0, and clip_grad_norm itself, which refuses a negative max_norm, was never called.
TEST_CASE("new users: fit and train_truncated refuse a negative or NaN clip_norm") {
  Dense d(2, 1, {}, true, float64);
  SGD opt(d.parameters(), {.lr = 0.1});
  const Tensor x = Tensor::ones({2, 4}, float64), y = Tensor::zeros({1, 4}, float64);
  auto batch = [&](std::size_t, std::size_t) { return mse_loss(d(x), y); };
  CHECK_THROWS_WITH_AS(fit(opt, 1, batch, {.clip_norm = -1}), doctest::Contains("fit: clip_norm must be"), ValueError);
  CHECK_THROWS_AS(fit(opt, 1, batch, {.clip_norm = std::nan("")}), ValueError);
  CHECK_THROWS_WITH_AS(train_truncated(d, opt, 3, [&](std::size_t) { return mse_loss(d(x), y); }, {.clip_norm = -1}),
                       doctest::Contains("train_truncated: clip_norm must be"), ValueError);
  CHECK_NOTHROW(fit(opt, 1, batch, {.clip_norm = 0}));  // 0: no clipping, as documented
}

// TimeDistributed(Dense(5, 2)) given a (3, 4, 2) sequence said "Dense(5 => 2): input (4, 6): expected
// (5, batch)": a shape the user never made, and no word of TimeDistributed or of the sequence.
TEST_CASE("new users: a TimeDistributed layer that refuses the steps names the sequence it was given") {
  TimeDistributed td(Dense(5, 2));
  try {
    td(Tensor::zeros({3, 4, 2}));
    FAIL("no error");
  } catch (const ShapeError& e) {
    const std::string what = e.what();
    CHECK(what.find("TimeDistributed(Dense(5 => 2))") != std::string::npos);
    CHECK(what.find("(3, 4, 2)") != std::string::npos);
    CHECK(what.find("expected (5, batch)") != std::string::npos);  // the layer's own words stay
  }
  try {
    td(Tensor::zeros({3, 5, 2}, float64));
    FAIL("no error");
  } catch (const DtypeError& e) {
    const std::string what = e.what();
    CHECK(what.find("TimeDistributed(Dense(5 => 2))") != std::string::npos);
    CHECK(what.find("(3, 5, 2)") != std::string::npos);
  }
  // A layer other than a plain Dense, refusing the steps laid side by side.
  TimeDistributed chain(Chain(Dense(5, 3), "relu"));
  CHECK_THROWS_WITH_AS(chain(Tensor::zeros({3, 4, 2})), doctest::Contains("sequence (3, 4, 2)"), ShapeError);
}
