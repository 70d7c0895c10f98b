// rewind/nn/gru_cell.hpp — gated recurrent unit (Cho et al. 2014), in both published forms.
#pragma once

#include "rnn_cell.hpp"

namespace rwd {

/// Options of GRUCell: `{.reset_after = false, .dtype = float64}`. Flat (no base struct), so every field
/// takes a designated initializer; the last two are CellOptions' fields.
struct GRUOptions {
  /// true: the reset gate scales the recurrent product, r ⊙ (W_hn h + b_hn) — PyTorch, cuDNN, Keras'
  /// default (reset_after=True). false: it scales the state before it, W_hn (r ⊙ h) + b_hn — Cho et al.
  bool reset_after = true;
  bool learn_initial_state = false;  ///< h₋₁ a trained parameter; else zeros
  Dtype dtype = Dtype::f32;          ///< the parameters' (and so the inputs' and state's) dtype
};

/// Gate order (r, z, n), as PyTorch:
///   [r_x; z_x; n_x] = W_ih x_t + b_ih        [r_h; z_h; n_h] = W_hh h_{t−1} + b_hh
///   r = σ(r_x + r_h)    z = σ(z_x + z_h)
///   n = tanh(n_x + r ⊙ n_h)                               (reset_after)
///   n = tanh(n_x + W_hn (r ⊙ h_{t−1}) + b_hn)             (reset before; W_hn = the last h rows of W_hh)
///   h_t = (1 − z) ⊙ n + z ⊙ h_{t−1},   y_t = h_t
/// Parameters: weight_ih (3h, input), weight_hh (3h, h), bias_ih, bias_hh (3h,), U(−1/√h, 1/√h); h0 when learned.
class GRUCell : public Cell {
 public:
  /// PyTorch's nn.GRUCell(input, hidden): parameters drawn from `gen` as listed above.
  GRUCell(std::size_t input, std::size_t hidden, GRUOptions options = {}, Generator& gen = default_generator());

  std::pair<Tensor, State> step(const Tensor& x, const State& state) override;
  /// Keras' GRU recurrent dropout: h_mask ⊙ h_{t−1} in the products with W_hh (and in r ⊙ h of the
  /// reset-before form), the unmasked h_{t−1} in h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}.
  std::pair<Tensor, State> step_dropped(const Tensor& x, const State& state, const Tensor& h_mask) override;
  State initial_state(std::size_t batch) const override;
  std::size_t input_size() const override { return m_input; }
  std::size_t output_size() const override { return m_hidden; }
  std::vector<Shape> state_shapes(std::size_t batch) const override { return std::vector<Shape>(1, column_shape(m_hidden, batch)); }
  bool state_matches(std::size_t, const Shape& got, std::size_t batch) const override {
    return got == column_shape(m_hidden, batch);
  }
  std::string repr() const override;
  /// Which form of the n gate the cell computes (GRUOptions::reset_after).
  bool reset_after() const { return m_reset_after; }

  Tensor weight_ih;  ///< (3·hidden, input): W_ir, W_iz, W_in stacked
  Tensor weight_hh;  ///< (3·hidden, hidden): W_hr, W_hz, W_hn stacked
  Tensor bias_ih;    ///< (3·hidden,): b_ir, b_iz, b_in
  Tensor bias_hh;    ///< (3·hidden,): b_hr, b_hz, b_hn
  Tensor h0;         ///< (hidden,) learned initial state, starting at 0; undefined unless learn_initial_state

 private:
  std::size_t m_input, m_hidden;
  bool m_reset_after;
  // The step, with h_mask (undefined: none) on h where it enters the recurrent products.
  std::pair<Tensor, State> advance(const Tensor& x, const State& state, const Tensor& h_mask);
};

}  // namespace rwd
