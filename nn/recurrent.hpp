// rewind/nn/recurrent.hpp — the stacked and bidirectional layer `Recurrent` (what RNN, LSTM and GRU
// build): each layer and direction is one run_sequence (nn/sequence.hpp) over the layer below's outputs.
#pragma once

#include <cstddef>
#include <concepts>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../core/random.hpp"
#include "activation.hpp"
#include "cell.hpp"
#include "dropout.hpp"
#include "gru_cell.hpp"
#include "lstm_cell.hpp"
#include "recur.hpp"
#include "rnn_cell.hpp"
#include "sequence.hpp"

namespace rwd {

// ---- the whole-sequence layer ----

/// How a bidirectional layer joins its two directions at each step.
enum class Merge {
  concat,  ///< [forward; reverse] along the features: 2·hidden rows (PyTorch, Keras' default)
  sum,     ///< forward + reverse: hidden rows (Keras' merge_mode="sum")
  mul,     ///< forward ⊙ reverse: hidden rows (Keras' merge_mode="mul")
  ave,     ///< (forward + reverse) / 2: hidden rows (Keras' merge_mode="ave")
};

/// Options of Recurrent: `{.num_layers = 2, .bidirectional = true}`.
struct RecurrentOptions {
  std::size_t num_layers = 1;     ///< layers stacked, each fed the previous one's (merged) outputs
  bool bidirectional = false;     ///< each layer also runs a second cell over the reversed sequence
  Merge merge = Merge::concat;    ///< how the two directions are joined
  double dropout = 0.0;           ///< dropout on the outputs between stacked layers, in training mode only
                                  ///< (not after the last layer); seeded from the generator at construction.
                                  ///< Nonzero with num_layers = 1 is a ValueError: it would do nothing
                                  ///< (in one layer, use input_dropout / recurrent_dropout)
  bool return_sequences = true;   ///< a whole sequence gives every step's output, or only the last
  /// Variational dropout (Gal & Ghahramani 2016; Keras' `dropout` and `recurrent_dropout`), in training
  /// mode only: see "Variational dropout" below. input_dropout drops each layer's input features with
  /// one mask per sequence; recurrent_dropout the h each step receives (state[0]), one mask per sequence.
  double input_dropout = 0.0;
  double recurrent_dropout = 0.0;  ///< p_h, for the h each step receives (see input_dropout)
  /// Checkpointed BPTT over whole sequences (run_sequence_checkpointed): `{.on = true}` keeps every
  /// k-th step's state and recomputes the steps between in the backward — O(T/k + k) steps of tape
  /// memory instead of O(T), the same gradients bit for bit. `every` is k; 0 means ⌈√T⌉.
  struct Checkpointing {
    bool on = false;        ///< checkpoint each layer's sequence
    std::size_t every = 0;  ///< k, the steps between kept states; 0 means ⌈√T⌉
  };
  Checkpointing checkpoint{};  ///< checkpointed BPTT (off by default)
};

/// Makes the cell of one layer from the size of that layer's input (called once per layer and
/// direction, layers in order, forward direction first).
using CellFactory = std::function<std::shared_ptr<Cell>(std::size_t input_size, std::size_t layer)>;

/// The per-step outputs, the last outputs and the final states of a Recurrent over a sequence.
struct RecurrentRun {
  std::vector<Tensor> outputs;      ///< one (H·dirs, batch) per step (H unless Merge::concat); zeros at padded steps
  Tensor last;                      ///< (H·dirs, batch): each column's last real output (reverse half: at time 0)
  std::vector<State> final_states;  ///< per layer and direction: index layer·dirs + (reverse ? 1 : 0)
};

class Recurrent;
namespace detail {
/// How many threads' final states a Recurrent keeps now (tests: a thread's go when it ends).
std::size_t final_state_threads(const Recurrent& r);
}  // namespace detail

/// A stack of recurrent layers over whole sequences — PyTorch's nn.LSTM, Keras' LSTM — that also steps
/// one call at a time like Recur (Flux). Built by RNN, LSTM and GRU below, or from any cell:
///
///   Recurrent lstm = LSTM(32, 256, {}, {.num_layers = 2, .bidirectional = true});   // LSTM(32 => 256, layers=2, bidirectional)
///   Tensor ys = lstm(x);                        // x (time, 32, batch) → (time, 512, batch)
///   Tensor ys = lstm(x, mask_from_lengths(lengths));        // variable lengths
///   lstm.final_state(1, true);                  // {h, c} of layer 1's reverse direction
///   Recurrent mine(8, [](std::size_t in, std::size_t) { return std::make_shared<MyCell>(in, 16); });
///
/// Two ways to call it:
///  - A whole sequence ((time, features, batch) tensor, or a vector of steps, optionally with a
///    (time, batch) mask and initial states): each call starts afresh from the given initial states
///    (or the cells' own) and returns every output (time, H·dirs, batch) or only the last (H·dirs,
///    batch), per return_sequences. The carried step state is not touched.
///  - One step ((features, batch) or (features,)), unidirectional only: stateful exactly like Recur —
///    the state is kept between calls, reset(model) resets it, a batch-size change without reset is
///    an error, and after backward the state keeps its value but not its history. So
///    `Chain(RNN(2, 5), Dense(5, 1))` runs a sequence one call per step, as in Flux.
/// final_state() holds the states after the calling thread's latest call of either kind.
///
/// Threads. A whole-sequence call writes nothing shared: its final states are kept per calling
/// thread, and the parameters are only read. So one model may run inference from several threads at
/// once, each under its own NoGradGuard (grad mode is per thread), provided it has no active dropout
/// (eval(), or dropout 0, variational too: dropout draws from the layer's own generator). Everything that changes the
/// model is not to overlap with any other call: stepping (the carried state is the model's), reset,
/// train()/eval(), to(), loading, and training (backward writes the parameters' gradients).
///
/// Variational dropout (options input_dropout = p_x, recurrent_dropout = p_h; Gal & Ghahramani 2016,
/// Keras' dropout / recurrent_dropout, DyNet's set_dropout(d, d_h)). In training mode each layer and
/// direction draws, once per call of a whole sequence, a mask m_x of its input's shape (features,
/// batch) and a mask m_h of its h's shape (hidden, batch), entries 0 with probability p and 1/(1 − p)
/// otherwise (inverted scaling: evaluation needs no rescaling and is the identity), and reuses them at
/// every step:  y_t, state_t = cell.step_dropped(m_x ⊙ x_t, state_{t−1}, m_h), which puts m_h on
/// h_{t−1} where it enters the recurrent products — Keras' "linear transformation of the recurrent
/// state". So each example of the batch and each call gets its own masks; the same units are dropped
/// at every step of one sequence. The recurrent mask applies only to state[0], the h carried into the
/// next step (from the initial state on) — for an LSTM not to c, whose path stays undropped; the
/// carried state itself is kept unmasked (a padded step keeps it as it was). RNN, LSTM and
/// LayerNorm-LSTM read h only through W_hh·h, so Cell's default step_dropped (step from {m_h ⊙ h,
/// rest}) is exactly that; GRU and LayerNorm-GRU override it and keep the unmasked h_{t−1} in their
/// update (1 − z) ⊙ n + z ⊙ h_{t−1}, as Keras' GRU does. A user's cell gets the default (its state[0]
/// masked) unless it overrides step_dropped.
/// Between stacked layers `dropout` (fresh mask every step) still applies, before m_x of the layer above.
/// Stepping one call at a time: the masks are drawn at the first step after reset (reset(model) or
/// reset_state()) and reused at every step until the next reset. Seeded like `dropout`: from the
/// same draw of the generator at construction (so turning it on shifts no later draws of `gen`).
/// Eval mode, or p = 0: exactly the layer without it.
///
/// Modules: layer k is the Recur `layer<k>` (and `layer<k>_reverse`), so parameters read
/// `layer0.cell.weight_ih`, `layer1_reverse.cell.bias_hh`; `dropout` when there is dropout.
/// PyTorch's keys (`weight_ih_l0_reverse`, …) are mapped by nn/torch_import.hpp.
class Recurrent : public Module {
 public:
  /// Builds num_layers (× 2 if bidirectional) cells with `make_cell`; `input_size` is the size of the
  /// first layer's input. `gen` seeds the dropout between layers.
  Recurrent(std::size_t input_size, const CellFactory& make_cell, RecurrentOptions options = {},
            Generator& gen = default_generator());
  /// Wraps given cells, layer by layer, forward before reverse: [l0, l0_reverse, l1, …]. The number of
  /// layers is cells.size() / directions (options.num_layers must be 1 or agree).
  explicit Recurrent(std::vector<std::shared_ptr<Cell>> cells, RecurrentOptions options = {},
                     Generator& gen = default_generator());

  /// (time, features, batch): the whole sequence. (features, batch) or (features,): one stateful step.
  Tensor forward(const Tensor& x) override;
  /// The whole (time, features, batch) sequence with a (time, batch) mask and initial states.
  Tensor forward(const Tensor& seq, const Tensor& mask, const std::vector<State>& initial = {});
  /// The whole sequence given as steps.
  Tensor forward(const std::vector<Tensor>& steps, const Tensor& mask = {}, const std::vector<State>& initial = {});
  /// The whole sequence from initial states, without a mask: `lstm(x, states)` with states a
  /// std::vector<State> (one per layer and direction, the order of final_states(); from PyTorch's
  /// stacked h0/c0 by from_torch_states). A template only so that `lstm(x, {})` keeps meaning "no mask".
  template <std::same_as<std::vector<State>> States>
  Tensor forward(const Tensor& seq, const States& initial) {
    return forward(seq, Tensor(), initial);
  }
  /// One layer, one direction: `lstm(x, State{h0, c0})`.
  template <std::same_as<State> S>
  Tensor forward(const Tensor& seq, const S& initial) {
    return forward(seq, Tensor(), std::vector<State>{initial});
  }
  /// forward(seq, mask, initial).
  Tensor operator()(const Tensor& seq, const Tensor& mask, const std::vector<State>& initial = {}) {
    return forward(seq, mask, initial);
  }
  /// forward(seq, initial): from initial states (one State, or one per layer and direction), no mask.
  template <class S>
    requires std::same_as<S, std::vector<State>> || std::same_as<S, State>
  Tensor operator()(const Tensor& seq, const S& initial) {
    return forward(seq, initial);
  }
  /// forward(steps, mask, initial).
  Tensor operator()(const std::vector<Tensor>& steps, const Tensor& mask = {}, const std::vector<State>& initial = {}) {
    return forward(steps, mask, initial);
  }
  using Module::operator();
  /// A sequence layer: Chain(…)(x, mask) gives it the mask (forward(x, mask)).
  bool takes_mask() const override { return true; }
  Tensor forward_masked(const Tensor& x, const Tensor& mask) override { return forward(x, mask); }

  /// The whole sequence with everything: per-step outputs, last outputs and final states.
  /// `initial`, when given, has one State per layer and direction (the order of final_states).
  RecurrentRun run(const std::vector<Tensor>& steps, const Tensor& mask = {}, const std::vector<State>& initial = {});

  /// Like `LSTM(32 => 256, layers=2, bidirectional)`; for a user's cell, `Recurrent(<cell>, …)`.
  std::string repr() const override;
  /// Forgets the final states, every thread's (the Recur layers reset their own carried state).
  void reset_state() override;

  /// The state of layer `layer` (and direction) after this thread's latest call; throws before any.
  const State& final_state(std::size_t layer = 0, bool reverse = false) const;
  /// Every final state of this thread's latest call, index layer·dirs + (reverse ? 1 : 0), like
  /// PyTorch's h_n; empty before any.
  const std::vector<State>& final_states() const;

  /// The stateful wrapper of one layer and direction (its state() is the carried step state).
  Recur& layer(std::size_t layer, bool reverse = false) const;
  /// The cell of one layer and direction.
  Cell& cell(std::size_t layer, bool reverse = false) const { return this->layer(layer, reverse).cell(); }
  /// Number of stacked layers.
  std::size_t num_layers() const { return m_options.num_layers; }
  /// Whether each layer also runs over the reversed sequence.
  bool bidirectional() const { return m_options.bidirectional; }
  /// 2 if bidirectional, else 1.
  std::size_t directions() const { return m_options.bidirectional ? 2 : 1; }
  /// The options it was built with (num_layers as counted from the cells when given cells).
  const RecurrentOptions& options() const { return m_options; }
  /// Features of the first layer's input.
  std::size_t input_size() const;
  /// Rows of each output: H·dirs with Merge::concat, H with the other merges.
  std::size_t output_size() const;

 private:
  struct FinalStates;
  friend std::size_t detail::final_state_threads(const Recurrent& r);
  void build(std::vector<std::shared_ptr<Cell>> cells, Generator& gen);
  Tensor step(const Tensor& x);
  Tensor between_layers(const Tensor& y);
  void set_final(std::vector<State> states);
  // Variational dropout (RecurrentOptions::input_dropout, recurrent_dropout): whether it acts now, a
  // fresh mask, and one layer's step with the stateful mode's masks.
  bool variational() const;
  Tensor variational_mask(double p, const Shape& shape, Dtype dtype);
  Tensor variational_step(std::size_t i, const Tensor& x);
  // One layer and direction over the sequence: run_sequence, or run_sequence_checkpointed when the
  // options ask for checkpointing.
  // `outputs` false: the per-step outputs are not wanted (the last layer of return_sequences = false),
  // so a checkpointed run keeps none (only `last` and the final state). `owner`, when set, owns `cell`
  // (made for this call): checkpointed pieces keep it for their re-run in the backward.
  SequenceRun layer_sequence(Cell& cell, const std::vector<Tensor>& steps, State initial, const Tensor& mask,
                             bool reverse, bool outputs = true, std::shared_ptr<Cell> owner = nullptr) const;
  // Variational dropout's masks for one layer and direction (m_x, m_h; undefined where p = 0), drawn
  // once per call, and the run with them (plain layer_sequence when both are undefined).
  std::pair<Tensor, Tensor> variational_masks(const Cell& cell, const std::vector<Tensor>& steps);
  SequenceRun masked_sequence(Cell& cell, const std::vector<Tensor>& steps, State initial, const Tensor& mask,
                              bool reverse, bool outputs, const Tensor& m_x, const Tensor& m_h) const;
  // Layer l's forward and reverse runs at once, on two threads (when detail::beside_pays()).
  std::vector<SequenceRun> directions_beside(std::size_t l, const std::vector<Tensor>& xs, const std::vector<State>& initial,
                                             const Tensor& mask, bool outputs);
  // run(), with the last layer's per-step outputs left out when `last_outputs` is false.
  RecurrentRun run_layers(const std::vector<Tensor>& steps, const Tensor& mask, const std::vector<State>& initial,
                          bool last_outputs);

  RecurrentOptions m_options;
  std::vector<std::shared_ptr<Recur>> m_layers;  // index layer·dirs + direction
  std::shared_ptr<Dropout> m_dropout;            // null without dropout
  std::shared_ptr<FinalStates> m_final;          // the final states, per calling thread
  Generator m_variational_gen;                   // draws the variational dropout masks
  std::vector<std::pair<Tensor, Tensor>> m_step_masks;  // stepping: (m_x, m_h) per layer, until reset
};

/// Elman RNN layers (nn.RNN): h_t = act(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh), act tanh or relu.
Recurrent RNN(std::size_t input, std::size_t hidden, Activation activation = "tanh", CellOptions options = {},
              RecurrentOptions recurrent = {}, Generator& gen = default_generator());
Recurrent RNN(std::size_t input, std::size_t hidden, Activation activation, CellOptions options, Generator& gen);
/// LSTM layers (nn.LSTM, gate order i, f, g, o; optional peepholes): see LSTMCell.
Recurrent LSTM(std::size_t input, std::size_t hidden, LSTMOptions options = {}, RecurrentOptions recurrent = {},
               Generator& gen = default_generator());
Recurrent LSTM(std::size_t input, std::size_t hidden, LSTMOptions options, Generator& gen);
/// GRU layers (nn.GRU with reset_after; Cho et al.'s form without): see GRUCell.
Recurrent GRU(std::size_t input, std::size_t hidden, GRUOptions options = {}, RecurrentOptions recurrent = {},
              Generator& gen = default_generator());
Recurrent GRU(std::size_t input, std::size_t hidden, GRUOptions options, Generator& gen);

/// rewind's per-layer states (Recurrent::final_states(), or `initial`: one State per layer and
/// direction, each component (hidden, batch)) as PyTorch stacks them: one (layers·dirs, batch, hidden)
/// tensor per component — nn.RNN/GRU's h_n, nn.LSTM's (h_n, c_n). Differentiable. Throws ShapeError
/// if the states do not all have the same components of one shape.
std::vector<Tensor> to_torch_states(const std::vector<State>& states);
/// The inverse: PyTorch's h0 (and c0), each (layers·dirs, batch, hidden), as one State per layer and
/// direction for Recurrent's `initial`. Differentiable.
std::vector<State> from_torch_states(const std::vector<Tensor>& stacked);
}  // namespace rwd
