// rewind/nn/cell.hpp — what a recurrent cell is.
//
// A cell is one time step: `step(x, state) -> (y, state)`. It holds the parameters and nothing of
// time: the loop over steps lives outside it (Recur for one step at a time, the sequence layers for a
// whole sequence), so backprop-through-time is just the reverse sweep over the unrolled tape.
//
// Layout (Flux's): x is (input, batch), y and every state tensor (hidden, batch). A (input,) vector is
// a batch of one and gives (hidden,) outputs.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

#include "module.hpp"

namespace rwd {

/// The state a cell carries between steps: {h} for RNN and GRU, {h, c} for LSTM.
using State = std::vector<Tensor>;

/// A recurrent cell: a Module with a step function and an initial state.
class Cell : public Module {
 public:
  /// One step: the output and the next state.
  virtual std::pair<Tensor, State> step(const Tensor& x, const State& state) = 0;
  /// The state before the first step for `batch` columns (0 = a single (hidden,) vector): zeros, or
  /// the learned initial state broadcast over the batch (recorded, so it receives gradients).
  virtual State initial_state(std::size_t batch) const = 0;
  /// Size of x along axis 0.
  virtual std::size_t input_size() const = 0;
  /// Size of y along axis 0.
  virtual std::size_t output_size() const = 0;

  /// A cell applied to one input from its initial state is the first step of a sequence.
  Tensor forward(const Tensor& x) override;

 protected:
  /// Throws ShapeError naming the cell unless x is (input_size(), batch) or (input_size(),), and the
  /// state matches x's batch. Returns the batch size (0 for a vector).
  std::size_t check_step(const Tensor& x, const State& state, std::size_t n_state) const;
};

}  // namespace rwd
