// rewind/nn/rnn_cell.hpp — the Elman cell.
#pragma once

#include "../core/random.hpp"
#include "activation.hpp"
#include "cell.hpp"
#include "../autograd/ops.hpp"  // affine()

namespace rwd {

/// h_t = act(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh),  y_t = h_t   (act = tanh or relu)
///
/// Parameters as PyTorch's nn.RNN: weight_ih (hidden, input), weight_hh (hidden, hidden), bias_ih,
/// bias_hh (hidden,), all U(−1/√hidden, 1/√hidden); h0 (hidden,) when learned. Prints as
/// `RNNCell(2 => 5, tanh)`.
class RNNCell : public Cell {
 public:
  /// PyTorch's nn.RNNCell(input, hidden, nonlinearity): activation "tanh" or "relu" (else ValueError).
  RNNCell(std::size_t input, std::size_t hidden, Activation activation = "tanh", CellOptions options = {},
          Generator& gen = default_generator());

  std::pair<Tensor, State> step(const Tensor& x, const State& state) override;
  /// True for a RNNCell itself; false for a class derived from it, whose overridden step must
  /// run (such a class may override this too, with project_input and step_projected to match).
  bool projects_input() const override;
  /// W_ih·[x₀ x₁ …] + b_ih, (hidden, Σ batch).
  Tensor project_input(const std::vector<Tensor>& xs) override;
  std::pair<Tensor, State> step_projected(const Tensor& projected, std::size_t first, const State& state) override;
  State initial_state(std::size_t batch) const override;
  std::size_t input_size() const override { return m_input; }
  std::size_t output_size() const override { return m_hidden; }
  std::vector<Shape> state_shapes(std::size_t batch) const override { return std::vector<Shape>(1, column_shape(m_hidden, batch)); }
  bool state_matches(std::size_t, const Shape& got, std::size_t batch) const override {
    return got == column_shape(m_hidden, batch);
  }
  std::string repr() const override;
  /// The nonlinearity, tanh or relu.
  const Activation& activation() const { return m_activation; }

  Tensor weight_ih;  ///< (hidden, input)
  Tensor weight_hh;  ///< (hidden, hidden)
  Tensor bias_ih;    ///< (hidden,)
  Tensor bias_hh;    ///< (hidden,)
  Tensor h0;         ///< (hidden,) learned initial state, starting at 0; undefined unless learn_initial_state

 private:
  // The step after the input projection (checked by the caller).
  std::pair<Tensor, State> advance(const Tensor& px, std::size_t first, const State& state);
  std::size_t m_input, m_hidden;
  Activation m_activation;
};

}  // namespace rwd
