// rewind/nn/recur.hpp — a cell made stateful (Flux's Recur): call it step by step, it remembers.
#pragma once

#include <memory>
#include <type_traits>
#include <vector>

#include "cell.hpp"
#include "gru_cell.hpp"
#include "lstm_cell.hpp"
#include "rnn_cell.hpp"

namespace rwd {

/// Wraps a cell and keeps its state between calls:
///
///   Chain m(Recur(RNNCell(2, 5)), Dense(5, 1));   // or Chain(RNN(2, 5), Dense(5, 1)): a Recurrent steps alike
///   for (const Tensor& x : seq) y = m(x);   // each call is the next time step
///   reset(m);                                // back to the initial state (nn/reset.hpp)
///
/// A step x is (input, batch) (or (input,)); a whole sequence may also be given as one
/// (time, input, batch) tensor, which runs every step and returns (time, hidden, batch). Batch 0 and
/// zero time steps are refused.
///
/// The carried state survives the tape being cleared by backward(): it keeps its value but not its
/// history, so the next batch's gradients stop at the boundary (as Flux and Keras stateful layers do).
/// A batch of another size without reset() is an error, not a silent broadcast.
class Recur : public Module {
 public:
  /// Shares `cell` (a handle kept outside sees the same parameters), registered as child "cell"; null is a ValueError.
  explicit Recur(std::shared_ptr<Cell> cell);
  /// Takes a cell by value: `Recur(LSTMCell(2, 5))` (a temporary or std::move'd; a named cell, which
  /// cannot be copied, is refused at the call).
  template <class C>
    requires(std::is_base_of_v<Cell, std::decay_t<C>> &&
             // a temporary or std::move(cell): cells cannot be copied (to share one, pass a shared_ptr)
             !std::is_lvalue_reference_v<C>)
  explicit Recur(C&& cell) : Recur(std::make_shared<std::decay_t<C>>(std::forward<C>(cell))) {}

  /// One step (2-D or 1-D x), or a whole (time, input, batch) sequence.
  Tensor forward(const Tensor& x) override;
  /// One step (2-D or 1-D x) under recurrent dropout: the cell's step_dropped with `h_mask` (of the
  /// carried h's shape), which masks h where it enters the recurrent products; the state carried on is
  /// the cell's next state, unmasked (Recurrent's stepping mode with recurrent_dropout).
  Tensor step_dropped(const Tensor& x, const Tensor& h_mask);
  std::string repr() const override { return "Recur(" + m_cell->repr() + ")"; }

  /// Back to the initial state (taken afresh at the next call, so a learned h₋₁ gets its gradient).
  void reset_state() override { m_state.clear(); }
  /// Resets only the columns where `done[b]` is true (sequences that ended), keeping the others.
  void reset_rows(const std::vector<bool>& done) override;
  /// Keeps the state's value and drops its history: the next backward stops here (truncated BPTT).
  void detach_state() override;
  /// The carried state's values, detached (empty before the first step and after reset).
  std::vector<Tensor> save_state() const override;
  /// Carries `saved` on (empty: back to the initial state, as after reset).
  void restore_state(const std::vector<Tensor>& saved) override;

  /// The carried state (empty before the first step and after reset).
  const State& state() const { return m_state; }
  /// Replaces the carried state (shapes are checked at the next step).
  void set_state(State state) { m_state = std::move(state); }
  /// The wrapped cell (its parameters, its step).
  Cell& cell() const { return *m_cell; }
  /// Throws ShapeError, naming `who` (this Recur or a layer built on it), when x's batch differs from
  /// the carried state's.
  void check_batch(const Tensor& x, const Module& who) const;

 private:
  Tensor step(const Tensor& x, const Tensor& h_mask = {});
  std::shared_ptr<Cell> m_cell;
  State m_state;
};

// The factories RNN, LSTM and GRU (Flux's spellings) build a Recurrent (nn/recurrent.hpp): one layer of
// it steps exactly like a Recur, and it also runs whole sequences, stacked and bidirectional.

}  // namespace rwd
