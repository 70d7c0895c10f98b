// examples/fit_tiny.cpp — a 3-step tanh RNN, written by hand from rewind's primitives, learns to
// predict the next value of a noisy sine wave from the three before it.
//
//   h_t = tanh(W_x x_t + W_h h_{t-1} + b)      t = 1, 2, 3,  h_0 = 0
//   y   = W_y h_3 + b_y                         the prediction of x_4
//
// Backpropagation through time needs no code of its own: the tape records the unrolled steps and
// backward() walks them in reverse. rwd::gradcheck first compares the tape's gradients with central
// finite differences in float64; then plain gradient descent, written in the loop, fits the model.
#include <rewind.hpp>

#include <cmath>
#include <iomanip>
#include <iostream>
#include <string>
#include <vector>

using namespace rwd;

constexpr std::size_t hidden = 8;   // size of h
constexpr std::size_t batch = 64;   // sequences, trained on all at once: column j is sequence j
constexpr int steps = 3;

struct TinyRNN {
  Tensor W_x, W_h, b, W_y, b_y;
  std::vector<Tensor> parameters() const { return {W_x, W_h, b, W_y, b_y}; }
};

/// Mean squared error of the predictions. xs[t] is (1, batch), step t of every sequence.
Tensor loss(const TinyRNN& m, const std::vector<Tensor>& xs, const Tensor& target) {
  const Dtype dt = m.W_x.dtype();  // float32 while training, float64 inside gradcheck
  Tensor h = Tensor::zeros({hidden, batch}, dt);
  for (const Tensor& x : xs) h = tanh(matmul(m.W_x, x.to(dt)) + matmul(m.W_h, h) + m.b);
  Tensor y = matmul(m.W_y, h) + m.b_y;
  return mean(square(y - target.to(dt)));
}

int main(int argc, char** argv) {
  // It takes no options: it always runs in full, in seconds (--quick is accepted, as by every example).
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout << "usage: fit_tiny [--quick]   (a few seconds; no other options)\n";
      return 0;
    }
    if (a != "--quick") {
      std::cerr << "fit_tiny: unexpected argument '" << a << "'\nusage: fit_tiny [--quick]   (a few seconds; no other options)\n";
      return 2;
    }
  }
  Generator gen(42);

  // The data: windows of sin(0.3 k) + noise. Sequence j is (s_j, s_j+1, s_j+2), its target s_j+3.
  std::vector<double> s(batch + steps);
  for (std::size_t k = 0; k < s.size(); ++k) s[k] = std::sin(0.3 * k) + 0.05 * gen.normal();
  auto window = [&](int t) {
    return Tensor::from_vector(std::vector<double>(s.begin() + t, s.begin() + t + batch), {1, batch});
  };
  std::vector<Tensor> xs;
  for (int t = 0; t < steps; ++t) xs.push_back(window(t));
  Tensor target = window(steps);

  // The model, float32. Small random weights; each a parameter (requires_grad) with a name.
  TinyRNN m{.W_x = Tensor::randn({hidden, 1}, gen) * 0.5,
            .W_h = Tensor::randn({hidden, hidden}, gen) * 0.3,
            .b = Tensor::zeros({hidden, 1}),
            .W_y = Tensor::randn({1, hidden}, gen) * 0.3,
            .b_y = Tensor::zeros({1, 1})};
  const char* names[] = {"W_x", "W_h", "b", "W_y", "b_y"};
  for (int i = 0; Tensor p : m.parameters()) p.set_requires_grad().set_name(names[i++]);

  // First make sure the gradients are right. gradcheck promotes the float32 parameters to float64
  // in place (loss() sees them through m), compares the tape's gradients with central differences,
  // compares the float32 gradients with those float64 ones, and restores the parameters.
  GradcheckReport report =
      gradcheck([&](const std::vector<Tensor>&) { return loss(m, xs, target); }, m.parameters());
  std::cout << report << "\n";

  // Then train: gradient descent — forward, backward (fills p.grad()), step, zero the gradients.
  const double lr = 0.2;
  double first = 0, last = 0;
  std::cout << std::fixed << std::setprecision(5);
  for (int epoch = 0; epoch <= 400; ++epoch) {
    Tensor L = loss(m, xs, target);
    last = L.item();  // read before backward(), which frees the tape's values
    L.backward();
    if (epoch == 0) first = last;
    if (epoch % 50 == 0) std::cout << "epoch " << std::setw(3) << epoch << "  loss " << last << "\n";
    NoGradGuard no_grad;  // the update itself is not recorded
    for (Tensor p : m.parameters()) {
      p.assign(p - lr * p.grad());
      p.zero_grad();
    }
  }

  const bool fell = last < 0.1 * first;
  std::cout << "loss " << first << " -> " << last << "\n";
  if (!fell) std::cout << "FAIL: the loss did not fall below a tenth of its start\n";
  return report && fell ? 0 : 1;
}
