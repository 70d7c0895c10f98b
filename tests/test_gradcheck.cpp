// gradcheck itself: it must pass right gradients and catch wrong ones, naming the input and index.
#include <doctest/doctest.h>

#include <rewind.hpp>

#include "support.hpp"

using namespace rwd;

namespace {

// y = x³ with a backward that can be made wrong at one element.
Tensor cube(const Tensor& x, int wrong_at) {
  return custom_op(
      "cube", {x}, [](const std::vector<Tensor>& in) { return in[0] * in[0] * in[0]; },
      [wrong_at](BackwardContext& c) {
        const Tensor& x = c.input(0);
        Tensor g = 3.0 * x * x;  // the right derivative
        if (wrong_at >= 0) {
          Tensor bump = Tensor::zeros(x.shape(), x.dtype());
          bump.data<double>()[wrong_at] = 0.5;
          g = g + bump;
        }
        c.accumulate(0, c.grad_out() * g);
      },
      "dx += dy⊙3x²");
}

}  // namespace

TEST_CASE("gradcheck: passes a right backward") {
  Generator gen(1);
  Tensor x = Tensor::uniform({3, 4}, -1, 1, gen, float64).set_requires_grad().set_name("x");
  GradcheckReport r = gradcheck([](const std::vector<Tensor>& in) { return cube(in[0], -1); }, {x});
  CHECK_MESSAGE(r.ok(), r.str());
  REQUIRE(r.inputs.size() == 1);
  CHECK(r.inputs[0].name == "x");
  CHECK(r.inputs[0].n_checked == 12);
  CHECK(r.inputs[0].max_abs_err < 1e-7);
}

TEST_CASE("gradcheck: catches a wrong backward and names the input and the index") {
  Generator gen(2);
  Tensor a = Tensor::uniform({2, 3}, -1, 1, gen, float64).set_requires_grad().set_name("a");
  Tensor x = Tensor::uniform({3, 4}, -1, 1, gen, float64).set_requires_grad().set_name("x");
  // Flat element 6 of x is (1, 2).
  GradcheckReport r = gradcheck([](const std::vector<Tensor>& in) { return matmul(in[0], cube(in[1], 6)); }, {a, x});
  CHECK_FALSE(r.ok());
  CHECK_FALSE(static_cast<bool>(r));
  REQUIRE(r.inputs.size() == 2);
  CHECK(r.inputs[0].ok());  // a's gradient does not go through the broken op
  CHECK(r.inputs[1].name == "x");
  CHECK(r.inputs[1].n_failed == 1);
  REQUIRE_FALSE(r.inputs[1].worst.empty());
  CHECK(r.inputs[1].worst[0].index == std::vector<std::size_t>{1, 2});
  const std::string text = r.str();
  CHECK(text.find("gradcheck: FAILED") == 0);
  CHECK(text.find("FAIL x (3, 4): 1 of 12 elements fail") != std::string::npos);
  CHECK(text.find("at [1, 2]") != std::string::npos);
  // The input's value at the failing element is shown (a rule wrong only for x < 0 shows in it).
  CHECK(r.inputs[1].worst[0].value == x.to_vector()[6]);
  CHECK(text.find("at [1, 2] (value ") != std::string::npos);
}

TEST_CASE("gradcheck: a float32 model is checked against its float64 shadow and restored") {
  Generator gen(3);
  Tensor W = Tensor::uniform({4, 3}, -1, 1, gen, float32).set_requires_grad().set_name("W");
  Tensor x = Tensor::uniform({3, 2}, -1, 1, gen, float32).set_name("x");
  const std::vector<double> before = W.to_vector();
  // The function captures W and x by handle, as a model would hold its parameters.
  auto f = [&](const std::vector<Tensor>&) { return tanh(matmul(W, x)); };
  GradcheckReport r = gradcheck(f, {W, x});
  CHECK_MESSAGE(r.ok(), r.str());
  REQUIRE(r.inputs.size() == 1);  // x does not require a gradient: held fixed
  CHECK(r.inputs[0].was_float32);
  CHECK(r.inputs[0].float32_rel_diff < 1e-5);
  CHECK(r.inputs[0].float32_rel_diff > 0);  // float32 really ran: rounding differs from float64
  CHECK(W.dtype() == float32);
  CHECK(x.dtype() == float32);
  CHECK(W.to_vector() == before);
}

TEST_CASE("gradgradcheck: second derivatives through double backward") {
  Generator gen(4);
  Tensor x = Tensor::uniform({2, 3}, -1, 1, gen, float64).set_requires_grad().set_name("x");
  Tensor W = Tensor::uniform({3, 3}, -1, 1, gen, float64).set_requires_grad().set_name("W");
  GradcheckReport r = gradgradcheck([](const std::vector<Tensor>& in) { return tanh(matmul(in[0], in[1])); }, {x, W});
  CHECK_MESSAGE(r.ok(), r.str());
  CHECK(r.what == "gradgradcheck");
  // A custom op with a wrong second derivative (its backward detaches x) is caught.
  auto first_order_only = [](const std::vector<Tensor>& in) {
    return custom_op(
        "square_detached", {in[0]}, [](const std::vector<Tensor>& v) { return v[0] * v[0]; },
        [](BackwardContext& c) { c.accumulate(0, c.grad_out() * 2.0 * c.input(0).detach()); });
  };
  CHECK(gradcheck(first_order_only, {x}).ok());
  CHECK_FALSE(gradgradcheck(first_order_only, {x}).ok());
}

TEST_CASE("gradcheck: bad calls") {
  Tensor x = Tensor::ones({2}, float64);
  CHECK_THROWS_AS(gradcheck([](const std::vector<Tensor>& in) { return in[0]; }, {x}), ValueError);
  // An intermediate from an outer tape, checked from inside another Tape scope: named, not misread.
  Tensor w = Tensor::ones({2}, float64).set_requires_grad();
  Tensor y = tanh(w);
  Tape inner;
  CHECK_THROWS_WITH_AS(gradcheck([](const std::vector<Tensor>& in) { return in[0]; }, {y}),
                       "gradcheck: input 0 is not a leaf (it was recorded by 'tanh'); pass parameters and inputs, not intermediates",
                       ValueError);
}

TEST_CASE("gradcheck: a near-zero float32 gradient (at a minimum) is not a float32 failure") {
  // d/db mean((b − t)²) at b ≈ mean(t): the exact gradient is tiny and float32's is all rounding.
  Tensor t = Tensor::from_vector(std::vector<double>{0.1, 0.2, 0.3, 0.4}, {4}, float32);
  Tensor b = Tensor::scalar(0.25, float32).set_requires_grad().set_name("b");
  GradcheckReport r = gradcheck([&](const std::vector<Tensor>&) { return mean(square(b - t)); }, {b, t});
  CHECK_MESSAGE(r.ok(), r.str());
  CHECK(r.inputs[0].was_float32);
}

TEST_CASE("gradcheck: a float32 tensor the function uses but was not given says why a float64 met it") {
  Generator gen(4);
  Tensor W = Tensor::uniform({3, 2}, -1, 1, gen, float32).set_requires_grad().set_name("W");
  Tensor x = Tensor::uniform({2, 2}, -1, 1, gen, float32);
  Tensor b = Tensor::uniform({3, 1}, -1, 1, gen, float32);  // captured, not passed: stays float32
  const std::string m = message_of<DtypeError>([&] {
    gradcheck([&](const std::vector<Tensor>& in) { return matmul(in[0], in[1]) + b; }, {W, x});
  });
  CHECK(contains(m, "inside gradcheck"));
  CHECK(contains(m, "promoted"));
  CHECK(W.dtype() == float32);  // restored after the throw
}
