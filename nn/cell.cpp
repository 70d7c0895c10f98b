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
  if (state.size() != n_state)
    throw ValueError(repr() + ": expected a state of " + std::to_string(n_state) + " tensor" + (n_state > 1 ? "s" : "") +
                     ", got " + std::to_string(state.size()));
  const std::size_t batch = s.ndim() == 2 ? s[1] : 0;
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
    // x has the parameters' dtype by now, so a state of x's dtype has it too (the message only if not).
    if (state[k].dtype() != x.dtype()) check_dtype(state[k], "state " + std::to_string(k));
  }
  return batch;
}

bool Cell::state_matches(std::size_t k, const Shape& got, std::size_t batch) const {
  const std::vector<Shape> want = state_shapes(batch);
  return k >= want.size() || got == want[k];
}

}  // namespace rwd
