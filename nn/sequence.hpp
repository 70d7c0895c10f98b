// rewind/nn/sequence.hpp — whole sequences: the time loop and masks for variable lengths. The layers
// built on them are in nn/recurrent.hpp (Recurrent: what RNN, LSTM and GRU build; it runs each layer
// through run_sequence), nn/recur.hpp (Recur: a (time, features, batch) input runs through
// run_sequence too) and nn/time_distributed.hpp.
//
// A sequence is a (time, features, batch) tensor — row-major, so each step x[t] is a contiguous
// (features, batch) slice — or a std::vector<Tensor> of (features, batch) steps. Outputs come back in
// the same two forms.
//
// The time loop lives here and nowhere else (STYLE rule 9): `run_sequence` calls cell.step(x_t, state)
// once per step, for any Cell — the built-in ones or a user's. Backprop-through-time is then the
// tape's reverse sweep over the unrolled steps; there is no backward code in this file.
//
// Variable lengths. A (time, batch) mask holds 1 at real steps and 0 at padding. At a padded step the
// runner keeps the old state and zeroes the output:
//
//     state_t = where(m_t, cell(x_t, state_{t−1}).state, state_{t−1})      y_t = where(m_t, y, 0)
//
// so a padded step changes nothing downstream and sends no gradient anywhere (the `where` routes all
// of it to the kept branch). Zero outputs are PyTorch's (pad_packed_sequence) and Keras' Bidirectional
// with return_sequences; Keras' plain RNN, LSTM and GRU layers instead repeat the previous output at a
// masked step (zero_output_for_mask = False), which only a loss that ignores the mask would see. With right padding (mask_from_lengths) a reversed run starts at each
// sequence's own last real step, which is what a bidirectional layer needs. A mask holds only 0 and 1
// (either dtype): any other value — 0.5, NaN, −1 — is a ValueError naming its (t, b) position.
//
// Empty sequences are refused: zero time steps is a ValueError, batch 0 a ShapeError saying "batch 0"
// (a (features,) step already means "no batch axis"; see nn/cell.hpp).
#pragma once
#include <cstddef>
#include <vector>

#include "cell.hpp"

namespace rwd {

// ---- sequences and masks ----

/// The steps of a (time, features, batch) tensor: `time` tensors of shape (features, batch), each a
/// view of its rows of `seq` (nothing is copied; writing into `seq` later shows in the steps, like
/// torch.unbind — detach() a step to keep its values apart).
std::vector<Tensor> split_steps(const Tensor& seq);
/// Steps of equal shape stacked into one (time, features, batch) tensor.
Tensor stack_steps(const std::vector<Tensor>& steps);
/// A (time, batch) mask for right-padded sequences: 1 where t < lengths[b], else 0. `time` 0 means
/// the longest length.
Tensor mask_from_lengths(const std::vector<std::size_t>& lengths, std::size_t time = 0, Dtype dtype = Dtype::f32);

// ---- the sequence runner ----

/// What run_sequence returns.
struct SequenceRun {
  std::vector<Tensor> outputs;  ///< one (output, batch) per step, in time order; zeros at padded steps
  Tensor last;                  ///< each column's output at its last real step in processing order
                                ///< (for a reversed run: at time 0)
  State final_state;            ///< the state after each column's last real step
};

/// Runs `cell` over the steps — t = 0 … T−1, or T−1 … 0 when `reverse` — from `initial` (the cell's
/// initial_state when empty), skipping the steps where the (time, batch) `mask` is 0 (see the top of
/// this file). Works with any Cell. Everything is recorded, so gradients reach the weights, the steps
/// and the initial state.
SequenceRun run_sequence(Cell& cell, const std::vector<Tensor>& steps, State initial = {}, const Tensor& mask = {},
                         bool reverse = false);
/// The same for a (time, features, batch) tensor.
SequenceRun run_sequence(Cell& cell, const Tensor& seq, State initial = {}, const Tensor& mask = {}, bool reverse = false);

/// run_sequence with checkpointed BPTT: the steps in pieces of `every` (0: ⌈√T⌉; rounded up to whole
/// blocks of the hoisted input projection), each run by run_sequence inside one checkpoint
/// (autograd/checkpoint.hpp). The tape keeps each piece's outputs and final state; a piece's
/// intermediates are recomputed when the backward reaches it, so T steps hold O(T/k + k) steps of
/// values instead of O(T), for one more forward pass. The same outputs and the same gradients, bit for
/// bit. `cell` must live until the backward. Without grad mode, plain run_sequence. With
/// `keep_outputs` false the per-step outputs are neither returned (SequenceRun::outputs is empty) nor
/// kept on the tape — only `last` and the final state — so a loss on the last output holds O(T/k + k)
/// steps in all (Recurrent does this for its last layer when return_sequences is false).
SequenceRun run_sequence_checkpointed(Cell& cell, const std::vector<Tensor>& steps, State initial = {},
                                      const Tensor& mask = {}, bool reverse = false, std::size_t every = 0,
                                      bool keep_outputs = true);

namespace detail {
/// run_sequence_checkpointed whose pieces also keep `owner` alive until their re-run is gone: the owner
/// of `cell` when it was made for one call (Recurrent's recurrent-dropout view of its own cell); null
/// when the caller keeps the cell alive itself.
SequenceRun run_sequence_checkpointed(Cell& cell, const std::shared_ptr<Cell>& owner, const std::vector<Tensor>& steps,
                                      State initial, const Tensor& mask, bool reverse, std::size_t every,
                                      bool keep_outputs);
/// run_sequence hoists a cell's input projection (one product for many steps) only when the step's
/// inputs × batch reach this (512 by default; smaller products gain nothing from it). Sets it, for
/// tests that run the hoisted path at gradcheck sizes, and returns the previous value.
std::size_t set_projection_min_inputs(std::size_t n);
}  // namespace detail

}  // namespace rwd

// Recurrent (with RNN/LSTM/GRU) and TimeDistributed were declared here until they got files of their
// own; code that included this header for them keeps compiling. (Included last: recurrent.hpp
// includes this header, whose declarations are complete by now.)
#include "recurrent.hpp"
#include "time_distributed.hpp"
