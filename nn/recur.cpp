#include "recur.hpp"

#include "../autograd/ops.hpp"
#include "../autograd/tape.hpp"
#include "sequence.hpp"

namespace rwd {

Recur::Recur(std::shared_ptr<Cell> cell) : m_cell(std::move(cell)) {
  if (!m_cell) throw ValueError("Recur: the cell is null");
  register_module("cell", m_cell);
}

void Recur::check_batch(const Tensor& x, const Module& who) const {
  if (m_state.empty()) return;
  const std::size_t batch = x.ndim() == 2 ? x.dim(1) : 0;
  const Shape hs = m_state[0].shape();
  const std::size_t carried = hs.ndim() == 2 ? hs[1] : 0;
  if (carried != batch)
    throw ShapeError(who.repr() + ": input " + x.shape().str() + " has batch " + (batch ? std::to_string(batch) : "none (a vector)") +
                     " but the carried state " + hs.str() + " has batch " +
                     (carried ? std::to_string(carried) : "none (a vector)") +
                     "; call reset() before feeding a batch of another size");
}

Tensor Recur::step_dropped(const Tensor& x, const Tensor& h_mask) {
  if (x.ndim() == 3) throw ShapeError(repr() + ": step_dropped takes one step (input, batch), not a sequence " + x.shape().str());
  return step(x, h_mask);
}

Tensor Recur::step(const Tensor& x, const Tensor& h_mask) {
  refuse_undefined(x);
  refuse_batch_0(x);  // before initial_state(0), which would be a vector's
  check_batch(x, *this);
  // The carried state changes only once the step has succeeded: a refused call leaves it as it was.
  const State& from = m_state.empty() ? m_cell->initial_state(x.ndim() == 2 ? x.dim(1) : 0) : m_state;
  auto [y, next] = h_mask.defined() ? m_cell->step_dropped(x, from, h_mask) : m_cell->step(x, from);
  // The state outlives the tape: when backward() clears it, these become constants with their values.
  for (const Tensor& s : next) s.keep_on_clear();
  m_state = std::move(next);
  if (GradMode::enabled()) Tape::current().drop_unread();  // the step's values no backward reads
  return y;
}

Tensor Recur::forward(const Tensor& x) {
  refuse_undefined(x);
  if (x.ndim() != 3) {
    if (x.ndim() != 1 && x.ndim() != 2)  // else the cell's check would read axis 0 of a 4-D input as its features
      throw ShapeError(repr() + ": input " + x.shape().str() + ": expected a sequence (time, " +
                       std::to_string(m_cell->input_size()) + ", batch) or one step (" +
                       std::to_string(m_cell->input_size()) + ", batch) or (" + std::to_string(m_cell->input_size()) + ",)");
    return step(x);
  }
  if (x.dim(0) == 0)
    throw ValueError(repr() + ": sequence " + x.shape().str() + " has zero time steps: an empty sequence is refused");
  if (const std::size_t in = m_cell->input_size(); x.dim(1) != in) {
    // Flux's Recur takes (features, batch, time): say so when the features sit on axis 0 (or 2: PyTorch's).
    std::string hint;
    if (x.dim(0) == in)
      hint = "; Flux's (features, batch, time) is permute(x, {2, 0, 1})";
    else if (x.dim(2) == in)
      hint = "; PyTorch's (time, batch, features) is permute(x, {0, 2, 1}), and (batch, time, features) (batch_first, "
             "Keras) permute(x, {1, 2, 0})";
    throw ShapeError(repr() + ": sequence " + x.shape().str() + ": expected (time, " + std::to_string(in) + ", batch)" + hint);
  }
  // The time loop is run_sequence's (nn/sequence.hpp), from the carried state; the checks a step makes
  // come first, so that a refused sequence names this Recur and leaves the state as it was.
  std::vector<Tensor> steps = split_steps(x);
  refuse_batch_0(steps[0]);
  check_batch(steps[0], *this);
  SequenceRun run = run_sequence(*m_cell, steps, m_state);
  // The state outlives the tape: when backward() clears it, these become constants with their values.
  for (const Tensor& s : run.final_state) s.keep_on_clear();
  m_state = std::move(run.final_state);
  return stack_steps(run.outputs);
}

void Recur::reset_rows(const std::vector<bool>& done) {
  if (m_state.empty()) return;
  const Shape hs = m_state[0].shape();
  if (hs.ndim() != 2 || hs[1] != done.size())
    throw ShapeError(repr() + ": reset_rows got " + std::to_string(done.size()) + " flags for a state of shape " + hs.str() +
                     " (one flag per batch column)");
  std::vector<double> m(done.begin(), done.end());
  const Tensor mask = Tensor::from_vector(m, {1, done.size()}, m_state[0].dtype());
  const State initial = m_cell->initial_state(done.size());
  for (std::size_t k = 0; k < m_state.size(); ++k) {
    m_state[k] = where(mask, initial[k], m_state[k]);
    m_state[k].keep_on_clear();
  }
}

void Recur::detach_state() {
  for (Tensor& s : m_state) s = s.detach();
}

std::vector<Tensor> Recur::save_state() const {
  std::vector<Tensor> saved;
  for (const Tensor& s : m_state) saved.push_back(s.detach());
  return saved;
}

void Recur::restore_state(const std::vector<Tensor>& saved) {
  m_state.clear();
  for (const Tensor& s : saved) {
    m_state.push_back(s.detach());
    m_state.back().keep_on_clear();
  }
}

}  // namespace rwd
