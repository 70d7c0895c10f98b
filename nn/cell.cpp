#include "cell.hpp"

namespace rwd {

Tensor Cell::forward(const Tensor& x) {
  const std::size_t batch = x.ndim() == 2 ? x.dim(1) : 0;
  return step(x, initial_state(batch)).first;
}

std::size_t Cell::check_step(const Tensor& x, const State& state, std::size_t n_state) const {
  const Shape s = x.shape();
  if ((s.ndim() != 1 && s.ndim() != 2) || s[0] != input_size())
    throw ShapeError(repr() + ": input " + s.str() + ": expected (" + std::to_string(input_size()) + ", batch) or (" +
                     std::to_string(input_size()) + ",) — features along axis 0, got " + std::to_string(s.ndim() ? s[0] : 0) +
                     " features");
  if (state.size() != n_state)
    throw ValueError(repr() + ": expected a state of " + std::to_string(n_state) + " tensor" + (n_state > 1 ? "s" : "") +
                     ", got " + std::to_string(state.size()));
  const std::size_t batch = s.ndim() == 2 ? s[1] : 0;
  for (const Tensor& h : state) {
    const Shape hs = h.shape();
    const bool fits = batch ? hs.ndim() == 2 && hs[1] == batch : hs.ndim() == 1;
    if (!fits)
      throw ShapeError(repr() + ": input " + s.str() + " and state " + hs.str() +
                       ": the state must have the input's batch size (" + (batch ? std::to_string(batch) : "a vector") +
                       "); call reset() when the batch size changes");
  }
  return batch;
}

}  // namespace rwd
