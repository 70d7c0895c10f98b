// rewind/nn/lstm_cell.hpp — long short-term memory (Hochreiter & Schmidhuber 1997), PyTorch's layout.
#pragma once

#include "rnn_cell.hpp"

namespace rwd {

/// Options of LSTMCell: `{.peephole = true, .dtype = float64}`. Flat (no base struct), so every field
/// takes a designated initializer; the last two are CellOptions' fields.
struct LSTMOptions {
  double forget_bias = 0.0;          ///< added to the forget gate's bias_ih at initialization (Keras' unit_forget_bias is 1)
  bool peephole = false;             ///< gates also see the cell state (Gers & Schmidhuber 2000)
  bool learn_initial_state = false;  ///< h₋₁ and c₋₁ trained parameters; else zeros
  Dtype dtype = Dtype::f32;          ///< the parameters' (and so the inputs' and states') dtype
};

/// Gate order (i, f, g, o), as PyTorch:
///   [i; f; g; o] = W_ih x_t + b_ih + W_hh h_{t−1} + b_hh          (4·hidden rows)
///   i = σ(i + w_ci ⊙ c_{t−1})   f = σ(f + w_cf ⊙ c_{t−1})   g = tanh(g)   (w_c· only with peepholes)
///   c_t = f ⊙ c_{t−1} + i ⊙ g
///   o = σ(o + w_co ⊙ c_t)
///   h_t = o ⊙ tanh(c_t),   y_t = h_t,   state {h, c}
/// Parameters: weight_ih (4h, input), weight_hh (4h, h), bias_ih, bias_hh (4h,), U(−1/√h, 1/√h);
/// peepholes w_ci, w_cf, w_co (h,) start at 0; h0, c0 (h,) when learned.
class LSTMCell : public Cell {
 public:
  /// PyTorch's nn.LSTMCell(input, hidden): parameters drawn from `gen` as listed above.
  LSTMCell(std::size_t input, std::size_t hidden, LSTMOptions options = {}, Generator& gen = default_generator());

  std::pair<Tensor, State> step(const Tensor& x, const State& state) override;
  /// True for a LSTMCell itself; false for a class derived from it, whose overridden step must
  /// run (such a class may override this too, with project_input and step_projected to match).
  bool projects_input() const override;
  /// W_ih·[x₀ x₁ …] + b_ih, (4·hidden, Σ batch).
  Tensor project_input(const std::vector<Tensor>& xs) override;
  std::pair<Tensor, State> step_projected(const Tensor& projected, std::size_t first, const State& state) override;
  State initial_state(std::size_t batch) const override;
  std::size_t input_size() const override { return m_input; }
  std::size_t output_size() const override { return m_hidden; }
  std::vector<Shape> state_shapes(std::size_t batch) const override { return std::vector<Shape>(2, column_shape(m_hidden, batch)); }
  bool state_matches(std::size_t, const Shape& got, std::size_t batch) const override {
    return got == column_shape(m_hidden, batch);
  }
  std::string repr() const override;
  /// Whether the gates see the cell state (LSTMOptions::peephole).
  bool peephole() const { return w_ci.defined(); }

  Tensor weight_ih;  ///< (4·hidden, input): W_ii, W_if, W_ig, W_io stacked
  Tensor weight_hh;  ///< (4·hidden, hidden): W_hi, W_hf, W_hg, W_ho stacked
  Tensor bias_ih;    ///< (4·hidden,): b_ii, b_if (plus forget_bias), b_ig, b_io
  Tensor bias_hh;    ///< (4·hidden,): b_hi, b_hf, b_hg, b_ho
  Tensor w_ci;       ///< (hidden,) input gate's peephole, starting at 0; undefined without peepholes
  Tensor w_cf;       ///< (hidden,) forget gate's peephole, starting at 0; undefined without peepholes
  Tensor w_co;       ///< (hidden,) output gate's peephole, starting at 0; undefined without peepholes
  Tensor h0;         ///< (hidden,) learned initial h, starting at 0; undefined unless learn_initial_state
  Tensor c0;         ///< (hidden,) learned initial c, starting at 0; undefined unless learn_initial_state

 private:
  // The step after the input projection (checked by the caller): the equations above.
  std::pair<Tensor, State> advance(const Tensor& px, std::size_t first, std::size_t batch, const State& state);
  std::size_t m_input, m_hidden;
};

}  // namespace rwd
