// rewind/nn/layer_norm_cells.hpp — layer-normalised LSTM and GRU cells (Ba, Kiros & Hinton 2016).
//
// Layer normalisation in a recurrent cell normalises each step's pre-activations over the features of
// one example (one column), so the statistics need no batch and no per-step running averages. Ba et
// al. (eqs. 20–22) and DyNet's VanillaLSTMBuilder with ln_lstm = true normalise the two products
// apart — the input's W_ih·x and the recurrent W_hh·h, each over its whole block of gate rows (4·hidden
// for the LSTM), each with its own gain and bias — add one bias b, and normalise the cell state before
// its tanh. The carried c_t itself stays un-normalised. These cells do the same; each LayerNorm is a
// submodule (nn/layer_norm.hpp), so the parameters save and load by name (nn/serialize.hpp):
//   weight_ih, weight_hh, bias, ln_ih.weight, ln_ih.bias, ln_hh.weight, ln_hh.bias[, ln_c.weight, ln_c.bias][, h0, c0]
//
// A consequence of normalising W_ih·x on its own: with a single input feature, W_ih·x = x·w and
// LN_ih(x·w) = sign(x)·(w − mean w)/std w (up to ε) — the cell sees only the sign of its input, not
// its size (|x| matters only below about √ε / std w). examples/forecast.cpp shows what that costs on a
// one-feature series; give such a cell a wider input (a Dense or Embedding first), or use LSTMCell.
#pragma once

#include "cell.hpp"
#include "layer_norm.hpp"
#include "recurrent.hpp"

namespace rwd {

/// Options of LayerNormLSTMCell: `{.forget_bias = 1, .dtype = float64}`. Flat, like LSTMOptions.
struct LayerNormLSTMOptions {
  double forget_bias = 0.0;          ///< added to the forget gate's rows of `bias` at initialization
  double eps = 1e-5;                 ///< the LayerNorms' ε (PyTorch's default; Keras uses 1e-3)
  bool learn_initial_state = false;  ///< h₋₁ and c₋₁ trained parameters; else zeros
  Dtype dtype = Dtype::f32;          ///< dtype of the parameters
};

/// LSTM with layer normalisation (Ba et al. 2016, eqs. 20–22; DyNet's ln_lstm), gate order (i, f, g, o)
/// as LSTMCell:
///   [i; f; g; o] = LN_ih(W_ih x_t) + LN_hh(W_hh h_{t−1}) + b      (each LN over all 4·hidden rows)
///   c_t = σ(f) ⊙ c_{t−1} + σ(i) ⊙ tanh(g)
///   h_t = σ(o) ⊙ tanh(LN_c(c_t)),   y_t = h_t,   state {h_t, c_t} (c_t un-normalised)
/// LN(v) = (v − mean v) / √(var v + ε) ⊙ γ + β over the rows of each column, γ = 1 and β = 0 at the start.
/// Parameters: weight_ih (4h, input), weight_hh (4h, h), bias (4h,), U(−1/√h, 1/√h) like LSTMCell;
/// ln_ih, ln_hh (4h,) and ln_c (h,) LayerNorms; h0, c0 (h,) when learned.
class LayerNormLSTMCell : public Cell {
 public:
  /// A cell from `input` features to `hidden` units, parameters drawn from `gen`; ValueError for a size 0.
  LayerNormLSTMCell(std::size_t input, std::size_t hidden, LayerNormLSTMOptions options = {},
                    Generator& gen = default_generator());

  std::pair<Tensor, State> step(const Tensor& x, const State& state) override;
  State initial_state(std::size_t batch) const override;
  std::size_t input_size() const override { return m_input; }
  std::size_t output_size() const override { return m_hidden; }
  std::vector<Shape> state_shapes(std::size_t batch) const override { return std::vector<Shape>(2, column_shape(m_hidden, batch)); }
  std::string repr() const override;

  Tensor weight_ih;  ///< (4h, input), the gate rows in order (i, f, g, o)
  Tensor weight_hh;  ///< (4h, h)
  Tensor bias;       ///< b (4h,), forget_bias added to the f rows
  Tensor h0;         ///< learned h₋₁ (h,); undefined unless learn_initial_state
  Tensor c0;         ///< learned c₋₁ (h,); undefined unless learn_initial_state
  std::shared_ptr<LayerNorm> ln_ih;  ///< LN_ih over the 4h rows of W_ih·x
  std::shared_ptr<LayerNorm> ln_hh;  ///< LN_hh over the 4h rows of W_hh·h
  std::shared_ptr<LayerNorm> ln_c;   ///< LN_c over the h rows of c_t, before its tanh

 private:
  std::size_t m_input, m_hidden;
};

/// Options of LayerNormGRUCell: `{.dtype = float64}`.
struct LayerNormGRUOptions {
  double eps = 1e-5;                 ///< the LayerNorms' ε
  bool learn_initial_state = false;  ///< h₋₁ a trained parameter; else zeros
  Dtype dtype = Dtype::f32;          ///< dtype of the parameters
};

/// GRU with layer normalisation, the LSTM's recipe applied to GRUCell's reset-after form (PyTorch's),
/// gate order (r, z, n):
///   [r_x; z_x; n_x] = LN_ih(W_ih x_t) + b_ih      [r_h; z_h; n_h] = LN_hh(W_hh h_{t−1}) + b_hh   (each LN over all 3·hidden rows)
///   r = σ(r_x + r_h)    z = σ(z_x + z_h)    n = tanh(n_x + r ⊙ n_h)
///   h_t = (1 − z) ⊙ n + z ⊙ h_{t−1},   y_t = h_t
/// Two biases (not one) because r scales n_h + b_hn alone. The state is not normalised (there is no
/// cell state; normalising h_t itself would change what the next step carries).
/// Parameters: weight_ih (3h, input), weight_hh (3h, h), bias_ih, bias_hh (3h,), U(−1/√h, 1/√h);
/// ln_ih, ln_hh (3h,) LayerNorms; h0 (h,) when learned.
class LayerNormGRUCell : public Cell {
 public:
  /// A cell from `input` features to `hidden` units, parameters drawn from `gen`; ValueError for a size 0.
  LayerNormGRUCell(std::size_t input, std::size_t hidden, LayerNormGRUOptions options = {},
                   Generator& gen = default_generator());

  std::pair<Tensor, State> step(const Tensor& x, const State& state) override;
  /// Recurrent dropout as GRUCell's (Keras'): h_mask ⊙ h_{t−1} in W_hh·h, the unmasked h_{t−1} in the update.
  std::pair<Tensor, State> step_dropped(const Tensor& x, const State& state, const Tensor& h_mask) override;
  State initial_state(std::size_t batch) const override;
  std::size_t input_size() const override { return m_input; }
  std::size_t output_size() const override { return m_hidden; }
  std::vector<Shape> state_shapes(std::size_t batch) const override { return std::vector<Shape>(1, column_shape(m_hidden, batch)); }
  std::string repr() const override;

  Tensor weight_ih;  ///< (3h, input), the gate rows in order (r, z, n)
  Tensor weight_hh;  ///< (3h, h)
  Tensor bias_ih;    ///< b_ih (3h,), added after LN_ih
  Tensor bias_hh;    ///< b_hh (3h,), added after LN_hh (so r scales b_hn too)
  Tensor h0;         ///< learned h₋₁ (h,); undefined unless learn_initial_state
  std::shared_ptr<LayerNorm> ln_ih;  ///< LN_ih over the 3h rows of W_ih·x
  std::shared_ptr<LayerNorm> ln_hh;  ///< LN_hh over the 3h rows of W_hh·h

 private:
  std::size_t m_input, m_hidden;
  // The step, with h_mask (undefined: none) on h where it enters W_hh·h.
  std::pair<Tensor, State> advance(const Tensor& x, const State& state, const Tensor& h_mask);
};

/// LayerNorm-LSTM layers (a Recurrent of LayerNormLSTMCell): prints `LayerNormLSTM(32 => 64, layers=2)`.
Recurrent LayerNormLSTM(std::size_t input, std::size_t hidden, LayerNormLSTMOptions options = {},
                        RecurrentOptions recurrent = {}, Generator& gen = default_generator());
Recurrent LayerNormLSTM(std::size_t input, std::size_t hidden, LayerNormLSTMOptions options, Generator& gen);
/// LayerNorm-GRU layers (a Recurrent of LayerNormGRUCell): prints `LayerNormGRU(32 => 64)`.
Recurrent LayerNormGRU(std::size_t input, std::size_t hidden, LayerNormGRUOptions options = {},
                       RecurrentOptions recurrent = {}, Generator& gen = default_generator());
Recurrent LayerNormGRU(std::size_t input, std::size_t hidden, LayerNormGRUOptions options, Generator& gen);

}  // namespace rwd
