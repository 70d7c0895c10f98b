#include "sequence.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>

#include "../autograd/checkpoint.hpp"
#include "../autograd/ops.hpp"
#include "../autograd/tape.hpp"
#include "../core/detail/impl.hpp"  // make_view
#include "../kernels/packed.hpp"
#include "detail/sequence_mask.hpp"

namespace rwd {

// ---- sequences and masks ----

std::vector<Tensor> split_steps(const Tensor& seq) {
  if (seq.ndim() != 3)
    throw ShapeError("split_steps: sequence " + seq.shape().str() + ": expected (time, features, batch)");
  std::vector<Tensor> steps;
  const Shape s = seq.shape();
  steps.reserve(s[0]);
  // Each step is a view of its rows of the sequence: nothing is copied.
  if (!seq.requires_grad() || !GradMode::enabled()) {  // data: nothing to record, one view a step
    const std::size_t n = s[1] * s[2];
    for (std::size_t t = 0; t < s[0]; ++t) steps.push_back(detail::make_view(seq, t * n, {s[1], s[2]}, "split_steps"));
    return steps;
  }
  // Recorded: each slice's gradient is added into its own rows of the sequence's adjoint
  // (accumulate_slice), so the backward is linear in the number of steps.
  for (std::size_t t = 0; t < s[0]; ++t) steps.push_back(squeeze(slice(seq, 0, t, t + 1), 0));
  return steps;
}

Tensor stack_steps(const std::vector<Tensor>& steps) { return stack(steps, 0); }

Tensor mask_from_lengths(const std::vector<std::size_t>& lengths, std::size_t time, Dtype dtype) {
  if (lengths.empty()) throw ShapeError("mask_from_lengths: no lengths: batch 0 is refused");
  const std::size_t longest = *std::max_element(lengths.begin(), lengths.end());
  if (time == 0) time = longest;
  if (time == 0)
    throw ValueError("mask_from_lengths: every length is 0 and no time was given: zero time steps are refused");
  if (longest > time)
    throw ValueError("mask_from_lengths: a length of " + std::to_string(longest) + " does not fit in " +
                     std::to_string(time) + " steps");
  const std::size_t batch = lengths.size();
  std::vector<double> m(time * batch, 0.0);
  for (std::size_t b = 0; b < batch; ++b)
    for (std::size_t t = 0; t < lengths[b]; ++t) m[t * batch + b] = 1.0;
  return Tensor::from_vector(m, {time, batch}, dtype);
}

// ---- the sequence runner ----

std::vector<double> detail::checked_mask(const std::string& who, const Tensor& mask, std::size_t time, std::size_t batch) {
  if (mask.shape() != Shape{time, batch})
    throw ShapeError(who + ": mask " + mask.shape().str() + " does not fit " + std::to_string(time) +
                     " steps of batch " + std::to_string(batch) + ": expected (" + std::to_string(time) + ", " +
                     std::to_string(batch) + ") — (time, batch), 1 at real steps and 0 at padding");
  std::vector<double> v = mask.to_vector();
  for (std::size_t k = 0; k < v.size(); ++k)
    if (v[k] != 0 && v[k] != 1)
      throw ValueError(who + ": mask value " + format_value(v[k]) + " at (t, b) = (" + std::to_string(k / batch) + ", " +
                       std::to_string(k % batch) + ") must be 0 or 1 (1 at real steps, 0 at padding)");
  return v;
}

namespace {

// Rows of the mask as constants of shape (1, batch), one per step, in the steps' dtype.
std::vector<Tensor> mask_rows(const std::string& who, const Tensor& mask, std::size_t time, std::size_t batch, Dtype dtype) {
  const std::vector<double> v = checked_mask(who, mask, time, batch);
  std::vector<Tensor> rows;
  for (std::size_t t = 0; t < time; ++t)
    rows.push_back(Tensor::from_vector(std::vector<double>(v.begin() + t * batch, v.begin() + (t + 1) * batch), {1, batch}, dtype));
  return rows;
}

// A hoisted input projection covers at most this many columns (steps × batch): 4 steps at batch 64
// already make a GEMM 4 times wider than a step's, and a wider one would only make the backward hold
// a bigger adjoint of it at once (lstm_large's peak memory).
constexpr std::size_t kProjectionColumns = 256;

// ... and only when a step's input is big enough for that to matter: with inputs × batch below this,
// a step's product is a few hundred multiply-adds, and gathering the steps for one product and
// reading its columns back cost more than the calls saved (sine_epoch, an RNN 1 → 20 at batch 32,
// ran 14% slower hoisted than per step).
std::atomic<std::size_t> projection_min_inputs{512};

// Whether run_sequence projects the inputs of steps s0 with `batch` columns in blocks (see below).
bool hoists_projection(const Cell& cell, const Shape& s0, std::size_t batch) {
  return cell.projects_input() && batch > 0 && s0[0] == cell.input_size() &&
         s0[0] * batch >= projection_min_inputs.load(std::memory_order_relaxed);
}

}  // namespace

SequenceRun run_sequence(Cell& cell, const std::vector<Tensor>& steps, State initial, const Tensor& mask, bool reverse) {
  if (steps.empty())
    throw ValueError("run_sequence: " + cell.repr() + ": the sequence has zero time steps: an empty sequence is refused");
  const Shape s0 = steps[0].shape();
  for (std::size_t t = 1; t < steps.size(); ++t)
    if (steps[t].shape() != s0)
      throw ShapeError("run_sequence: " + cell.repr() + ": step " + std::to_string(t) + " is " + steps[t].shape().str() +
                       " but step 0 is " + s0.str() + ": every step must have the same shape");
  const std::size_t T = steps.size(), batch = s0.ndim() == 2 ? s0[1] : 0;
  cell.refuse_batch_0(steps[0], "step");  // before initial_state(0), which would be a vector's
  std::vector<Tensor> valid;
  if (mask.defined()) {
    if (s0.ndim() != 2)
      throw ShapeError("run_sequence: " + cell.repr() + ": a mask needs (features, batch) steps, got " + s0.str());
    valid = mask_rows("run_sequence: " + cell.repr(), mask, T, batch, steps[0].dtype());
  }

  // The input projections of a chunk of steps as one product, [W_ih x_a … W_ih x_b] = W_ih [x_a … x_b]
  // (+ b_ih; affine_steps, which does not keep the steps twice), made when the first of its steps is reached; step t reads its block of columns. Only
  // for a cell that splits its step (Cell::projects_input) and steps the cell takes; otherwise, and
  // for (features,) vectors, step() reports what is wrong with them as it always has.
  const bool project = hoists_projection(cell, s0, batch);
  // Every step's dtype, as step() would check it: a projected block of the wrong one would otherwise be
  // named by affine_steps alone, without the layer.
  if (project)
    for (const Tensor& x : steps) cell.check_dtype(x);
  const std::size_t per = project ? std::max<std::size_t>(1, kProjectionColumns / batch) : 1;
  std::vector<Tensor> projections(project ? (T + per - 1) / per : 0);
  auto projection = [&](std::size_t t) -> const Tensor& {
    Tensor& p = projections[t / per];
    if (!p.defined()) {
      const std::size_t a = t / per * per, b = std::min(T, a + per);
      p = cell.project_input(std::vector<Tensor>(steps.begin() + a, steps.begin() + b));
    }
    return p;
  };

  SequenceRun run;
  run.outputs.resize(T);
  State state = initial.empty() ? cell.initial_state(batch) : std::move(initial);
  // The cell's weights are the same at every step: a product with one may pack it once (kernels/packed.hpp).
  const kernels::PackScope packed_weights;
  // Each step's entries are marked with their time step (the teaching views' "t=2"); the entries
  // after the loop, with none, also when a step throws.
  struct StepMarks {
    Tape& tape = Tape::current();
    ~StepMarks() { tape.mark_step(-1); }
  } marks;
  for (std::size_t k = 0; k < T; ++k) {
    const std::size_t t = reverse ? T - 1 - k : k;
    marks.tape.mark_step(static_cast<std::int64_t>(t));
    auto [y, next] = project ? cell.step_projected(projection(t), t % per * batch, state) : cell.step(steps[t], state);
    if (!valid.empty()) {
      // A padded step keeps the old state and outputs zeros: it neither moves the state nor reaches the loss.
      const Tensor& m = valid[t];
      for (std::size_t i = 0; i < next.size(); ++i) next[i] = where(m, next[i], state[i]);
      const Tensor zero = Tensor::scalar(0.0, y.dtype());
      run.last = where(m, y, run.last.defined() ? run.last : zero);
      y = where(m, y, zero);
    } else {
      run.last = y;
    }
    run.outputs[t] = y;
    state = std::move(next);
    // A block's last step: its projection's handle goes, so the next mark may drop the value (no backward reads it).
    if (project && (reverse ? t % per == 0 : (t + 1) % per == 0 || t + 1 == T)) projections[t / per] = Tensor();
  }
  run.final_state = std::move(state);
  return run;
}

SequenceRun run_sequence(Cell& cell, const Tensor& seq, State initial, const Tensor& mask, bool reverse) {
  return run_sequence(cell, split_steps(seq), std::move(initial), mask, reverse);
}

// ---- checkpointed BPTT ----

// Pieces of `every` steps — absolute blocks [j·k, (j+1)·k), taken last first when reversed — each one
// checkpoint around run_sequence over its steps. The blocks start where run_sequence's blocks of input
// projections start (k a multiple of them), so each piece computes exactly what the whole run does.
namespace {

// run_sequence_checkpointed's body; `owner`, when set, owns `cell` and is kept by every piece's re-run
// (a cell made for one call — Recurrent's recurrent-dropout view — must live until the backward).
SequenceRun checkpointed(Cell& cell, const std::shared_ptr<Cell>& owner, const std::vector<Tensor>& steps, State initial,
                         const Tensor& mask, bool reverse, std::size_t every, bool keep_outputs) {
  if (!GradMode::enabled() || steps.empty()) {
    SequenceRun run = run_sequence(cell, steps, std::move(initial), mask, reverse);
    if (!keep_outputs) run.outputs.clear();
    return run;
  }
  const std::size_t T = steps.size();
  const Shape s0 = steps[0].shape();
  const std::size_t batch = s0.ndim() == 2 ? s0[1] : 0;
  std::size_t k = every ? every : static_cast<std::size_t>(std::ceil(std::sqrt(static_cast<double>(T))));
  if (hoists_projection(cell, s0, batch)) {
    const std::size_t per = std::max<std::size_t>(1, kProjectionColumns / batch);
    k = (k + per - 1) / per * per;
  }
  if (k >= T) k = T;
  std::vector<double> m;  // the mask's values (checked here when the steps have a batch; else each piece says)
  if (mask.defined() && s0.ndim() == 2) m = checked_mask("run_sequence: " + cell.repr(), mask, T, batch);
  const Dtype dt = steps[0].dtype();

  SequenceRun run;
  if (keep_outputs) run.outputs.resize(T);
  State state = std::move(initial);  // empty: the first piece takes the cell's initial state
  Tape& tape = Tape::current();
  const std::size_t pieces = (T + k - 1) / k;
  for (std::size_t n = 0; n < pieces; ++n) {
    const std::size_t j = reverse ? pieces - 1 - n : n;
    const std::size_t a = j * k, b = std::min(T, a + k), len = b - a;
    // This piece's rows of the mask, and which columns have a real step in it (for `last`).
    Tensor piece_mask, any;
    if (mask.defined() && m.size() == T * batch) {
      std::vector<double> rows(m.begin() + a * batch, m.begin() + b * batch), seen(batch, 0.0);
      for (std::size_t i = 0; i < rows.size(); ++i) seen[i % batch] = std::max(seen[i % batch], rows[i]);
      piece_mask = Tensor::from_vector(rows, {len, batch}, mask.dtype());
      any = Tensor::from_vector(seen, {1, batch}, dt);
    } else if (mask.defined()) {
      piece_mask = mask;  // of the wrong shape: run_sequence says so
    }
    const std::size_t n_state = state.size();
    std::vector<Tensor> inputs = state;
    inputs.insert(inputs.end(), steps.begin() + a, steps.begin() + b);
    // In: the state, then the piece's steps. Out: its outputs (unless not kept), its `last`, then its
    // final state. Without the outputs the tape holds only the pieces' states and `last`s: O(T/k).
    auto piece = [&cell, owner, n_state, piece_mask, reverse, keep_outputs](const std::vector<Tensor>& in) {
      SequenceRun r = run_sequence(cell, std::vector<Tensor>(in.begin() + n_state, in.end()),
                                   State(in.begin(), in.begin() + n_state), piece_mask, reverse);
      std::vector<Tensor> out;
      if (keep_outputs) out = std::move(r.outputs);
      out.push_back(r.last);
      out.insert(out.end(), r.final_state.begin(), r.final_state.end());
      return out;
    };
    tape.mark_step(static_cast<std::int64_t>(reverse ? b - 1 : a));
    std::vector<Tensor> out = checkpoint(piece, inputs, "checkpoint");
    tape.mark_step(-1);
    const std::size_t n_out = keep_outputs ? len : 0;
    for (std::size_t t = 0; t < n_out; ++t) run.outputs[a + t] = out[t];
    // Each column's last real output: this piece's where it has a real step, else the one before.
    const Tensor& last = out[n_out];
    run.last = !run.last.defined() || !any.defined() ? last : where(any, last, run.last);
    state = State(out.begin() + n_out + 1, out.end());
  }
  run.final_state = std::move(state);
  return run;
}

}  // namespace

SequenceRun run_sequence_checkpointed(Cell& cell, const std::vector<Tensor>& steps, State initial, const Tensor& mask,
                                      bool reverse, std::size_t every, bool keep_outputs) {
  return checkpointed(cell, nullptr, steps, std::move(initial), mask, reverse, every, keep_outputs);
}

namespace detail {
SequenceRun run_sequence_checkpointed(Cell& cell, const std::shared_ptr<Cell>& owner, const std::vector<Tensor>& steps,
                                      State initial, const Tensor& mask, bool reverse, std::size_t every,
                                      bool keep_outputs) {
  return checkpointed(cell, owner, steps, std::move(initial), mask, reverse, every, keep_outputs);
}
std::size_t set_projection_min_inputs(std::size_t n) { return projection_min_inputs.exchange(n); }
}  // namespace detail

}  // namespace rwd
