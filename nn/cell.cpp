#include "cell.hpp"

#include "../autograd/ops.hpp"
#include "../autograd/tape.hpp"

namespace rwd {

Tensor initial_tensor(const Tensor& learned, std::size_t hidden, std::size_t batch, Dtype dtype) {
  if (!learned.defined()) return batch ? Tensor::zeros({hidden, batch}, dtype) : Tensor::zeros({hidden}, dtype);
  return batch ? broadcast_to(reshape(learned, {hidden, 1}), {hidden, batch}) : learned;
}

Tensor Cell::forward(const Tensor& x) {
  const std::size_t batch = x.ndim() == 2 ? x.dim(1) : 0;
  refuse_batch_0(x);  // before initial_state(0), which would be a vector's
  return step(x, initial_state(batch)).first;
}

std::vector<Shape> Cell::state_shapes(std::size_t batch) const {
  NoGradGuard no_grad;  // only the shapes are wanted: a learned initial state is not recorded
  std::vector<Shape> out;
  for (const Tensor& t : initial_state(batch)) out.push_back(t.shape());
  return out;
}

std::size_t Cell::check_step(const Tensor& x, const State& state, std::size_t n_state) const {
  const Shape s = x.shape();
  if ((s.ndim() != 1 && s.ndim() != 2) || s[0] != input_size())
    throw ShapeError(repr() + ": input " + s.str() + ": expected (" + std::to_string(input_size()) + ", batch) or (" +
                     std::to_string(input_size()) + ",) — features along axis 0, got " + std::to_string(s.ndim() ? s[0] : 0) +
                     " features");
  refuse_batch_0(x);
  check_dtype(x);
  const std::size_t batch = s.ndim() == 2 ? s[1] : 0;
  check_state(state, n_state, batch, s, x.dtype());
  return batch;
}

std::size_t Cell::check_projected(const Tensor& projected, std::size_t first, std::size_t rows, const State& state,
                                  std::size_t n_state) const {
  if (state.empty()) check_state(state, n_state, 0, projected.shape(), projected.dtype());  // throws: the count
  const Shape s = projected.shape(), h = state[0].shape();
  const std::size_t batch = h.ndim() == 2 ? h[1] : 0;
  // (first ≤ N − batch, not first + batch ≤ N: a first near SIZE_MAX would wrap the sum past the check.)
  const bool fits =
      batch ? s.ndim() == 2 && s[0] == rows && batch <= s[1] && first <= s[1] - batch : s == Shape{rows} && first == 0;
  if (!fits)
    throw ShapeError(repr() + ": input projection " + s.str() + " from column " + std::to_string(first) +
                     ": expected (" + std::to_string(rows) + ", N) holding the state's batch (" +
                     (batch ? std::to_string(batch) : "a vector") + ") of columns from there");
  check_dtype(projected, "input projection");
  check_state(state, n_state, batch, column_shape(input_size(), batch), projected.dtype());  // named as step's input
  return batch;
}

void Cell::check_state(const State& state, std::size_t n_state, std::size_t batch, const Shape& s, Dtype dtype) const {
  if (state.size() != n_state)
    throw ValueError(repr() + ": expected a state of " + std::to_string(n_state) + " tensor" + (n_state > 1 ? "s" : "") +
                     ", got " + std::to_string(state.size()));
  // Every state tensor against its own expected shape: a (1, batch) one would otherwise broadcast
  // silently over the hidden rows.
  for (std::size_t k = 0; k < state.size(); ++k) {
    const Shape hs = state[k].shape();
    if (!state_matches(k, hs, batch)) {
      const std::vector<Shape> want = state_shapes(batch);
      throw ShapeError(repr() + ": state " + std::to_string(k) + " is " + hs.str() + " but must be " +
                       (k < want.size() ? want[k].str() : "?") + " for the input " + s.str() +
                       " — (hidden, batch) with the input's batch (" + (batch ? std::to_string(batch) : "a vector") +
                       "); call reset() when the batch size changes");
    }
    // The input has the parameters' dtype by now, so a state of its dtype has it too (the message only if not).
    if (state[k].dtype() != dtype) check_dtype(state[k], "state " + std::to_string(k));
  }
}

Tensor Cell::project_input(const std::vector<Tensor>&) {
  throw ValueError(repr() + ": project_input: this cell does not split its step (projects_input() is false)");
}

std::pair<Tensor, State> Cell::step_projected(const Tensor&, std::size_t, const State&) {
  throw ValueError(repr() + ": step_projected: this cell does not split its step (projects_input() is false)");
}

// {h_mask ⊙ h, rest of state}. A state of the wrong shape goes on as it is (the step's own check
// names it); a mask that does not fit a right h is refused here.
State Cell::masked_h(State state, const Tensor& h_mask, std::size_t batch) const {
  if (state.empty()) return state;
  if (state[0].shape() == h_mask.shape()) {
    state[0] = state[0] * h_mask;
  } else if (state_matches(0, state[0].shape(), batch)) {
    throw ShapeError(repr() + ": step_dropped: the recurrent dropout mask " + h_mask.shape().str() +
                     " does not have h's shape " + state[0].shape().str());
  }
  return state;
}

std::pair<Tensor, State> Cell::step_dropped(const Tensor& x, const State& state, const Tensor& h_mask) {
  return step(x, masked_h(state, h_mask, x.ndim() == 2 ? x.dim(1) : 0));
}

std::pair<Tensor, State> Cell::step_projected_dropped(const Tensor& projected, std::size_t first, const State& state,
                                                      const Tensor& h_mask) {
  const std::size_t batch = !state.empty() && state[0].ndim() == 2 ? state[0].dim(1) : 0;
  return step_projected(projected, first, masked_h(state, h_mask, batch));
}

bool Cell::state_matches(std::size_t k, const Shape& got, std::size_t batch) const {
  const std::vector<Shape> want = state_shapes(batch);
  return k >= want.size() || got == want[k];
}

}  // namespace rwd
