// rewind/nn/cell.hpp — what a recurrent cell is.
//
// A cell is one time step: `step(x, state) -> (y, state)`. It holds the parameters and nothing of
// time: the loop over steps lives outside it (Recur for one step at a time, the sequence layers for a
// whole sequence), so backprop-through-time is just the reverse sweep over the unrolled tape.
//
// Layout (Flux's): x is (input, batch), y and every state tensor (hidden, batch). A (input,) vector is
// a batch of one and gives (hidden,) outputs. Since `batch` 0 stands for that vector, an input with
// batch 0 — (input, 0) — is refused (ShapeError saying "batch 0"), as is every size 0 of a cell.
//
// The input projection. A cell whose step starts with a product of the input alone (W_ih·x + b_ih)
// may say so (projects_input) and split its step in two: project_input(xs), the projections of any
// number of steps side by side, and step_projected, the rest of the step reading its step's block of
// columns. The sequence runner then projects every step of a known sequence as ONE
// product (nn/sequence.cpp) — a GEMM T times wider, with a better shape for BLAS — and the cell
// stays a composition of primitives. A cell that does not opt in is simply stepped. LSTMCell and
// RNNCell opt in (each step adds W_hh·h + b_hh onto its block in place, affine's wide base) — as
// themselves only: a class derived from one of them is stepped through its own step() unless it
// overrides projects_input() as well (its override of step would otherwise never run); GRUCell
// does not: its n gate needs W_in·x + b_in apart from W_hn·h + b_hn, so a step would first copy its
// strided block out — slower than projecting it on its own (gru_medium +12%, and more memory).
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

#include "module.hpp"

namespace rwd {

/// The state a cell carries between steps: {h} for RNN and GRU, {h, c} for LSTM.
using State = std::vector<Tensor>;

/// Options of RNNCell: `{.learn_initial_state = true, .dtype = float64}` (LSTMOptions and GRUOptions
/// repeat these two fields, flat, so that designated initializers work for every field).
struct CellOptions {
  bool learn_initial_state = false;  ///< h₋₁ (and c₋₁) a trained parameter, as in the seeds; else zeros
  Dtype dtype = Dtype::f32;          ///< the parameters' (and so the inputs' and states') dtype
};

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
  /// The shape of each state tensor for `batch` columns (0 = a single vector), what check_step holds
  /// a state to. By default the shapes of initial_state(batch), taken without recording; the built-in
  /// cells say (hidden, batch) directly.
  virtual std::vector<Shape> state_shapes(std::size_t batch) const;
  /// Whether state tensor k may have shape `got` for `batch` columns: got == state_shapes(batch)[k]
  /// by default; the built-in cells answer without building the list (check_step asks every step).
  virtual bool state_matches(std::size_t k, const Shape& got, std::size_t batch) const;

  /// Whether the cell splits its step into project_input and step_projected (false by default: the
  /// sequence runner then calls step).
  virtual bool projects_input() const { return false; }
  /// The input projections (W_ih·x + b_ih for the built-in cells) of the (input, batch) steps xs,
  /// side by side as one (rows, Σ batch) tensor, computed as one product. Throws ValueError unless
  /// projects_input().
  virtual Tensor project_input(const std::vector<Tensor>& xs);
  /// One step from its input projection: columns [first, first + batch) of `projected` (a
  /// project_input result, possibly of many steps), batch being the state's. The same as
  /// step(x, state) when those columns are project_input(x). Throws ValueError unless projects_input().
  virtual std::pair<Tensor, State> step_projected(const Tensor& projected, std::size_t first, const State& state);

  /// One step under recurrent dropout (RecurrentOptions::recurrent_dropout): `h_mask`, of state[0]'s
  /// shape, multiplies h where it enters the recurrent products — Keras' recurrent_dropout. By default
  /// step(x, {h_mask ⊙ h, rest of state}), which is that for a cell that reads h only through its
  /// products (RNN, LSTM: c is carried, h is not); a cell that also carries h itself overrides it and
  /// keeps that path unmasked (GRU: h' = (1 − z) ⊙ n + z ⊙ h with the unmasked h). A state of the
  /// wrong shape is passed on unmasked, for step's own check to name.
  virtual std::pair<Tensor, State> step_dropped(const Tensor& x, const State& state, const Tensor& h_mask);
  /// The same for step_projected (by default step_projected(projected, first, {h_mask ⊙ h, …})).
  virtual std::pair<Tensor, State> step_projected_dropped(const Tensor& projected, std::size_t first, const State& state,
                                                          const Tensor& h_mask);

  /// A cell applied to one input from its initial state is the first step of a sequence.
  Tensor forward(const Tensor& x) override;

 protected:
  /// {h_mask ⊙ state[0], rest of state} for step_dropped's default; a state whose h is of the wrong
  /// shape is returned as it is (the step's check names it), a mask not of a right h's shape is a ShapeError.
  State masked_h(State state, const Tensor& h_mask, std::size_t batch) const;
  /// Throws, naming the cell, unless x is (input_size(), batch ≥ 1) or (input_size(),) (ShapeError), the
  /// state has n_state tensors (ValueError) each of its state_shapes(batch) (ShapeError), and x and the
  /// state have the parameters' dtype (DtypeError). Returns the batch size (0 for a vector).
  std::size_t check_step(const Tensor& x, const State& state, std::size_t n_state) const;
  /// The same for step_projected: `projected` has `rows` rows and the state's batch of columns from
  /// `first` on ((rows,) with first 0 for a single vector), the state n_state tensors of the cell's
  /// shapes, all of the parameters' dtype. Returns the batch size (0 for a vector).
  std::size_t check_projected(const Tensor& projected, std::size_t first, std::size_t rows, const State& state,
                              std::size_t n_state) const;
  /// (rows, batch), or (rows,) for batch 0 (a single vector): the shape of a built-in cell's state.
  static Shape column_shape(std::size_t rows, std::size_t batch) { return batch ? Shape{rows, batch} : Shape{rows}; }

 private:
  void check_state(const State& state, std::size_t n_state, std::size_t batch, const Shape& input, Dtype dtype) const;
};

/// The initial state of one tensor of `hidden` rows: zeros, or a learned (hidden,) vector broadcast
/// to (hidden, batch). Shared by the built-in cells; a user's cell may use it too (examples/custom_cell.cpp).
Tensor initial_tensor(const Tensor& learned, std::size_t hidden, std::size_t batch, Dtype dtype);

}  // namespace rwd
