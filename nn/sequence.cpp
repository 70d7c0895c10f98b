#include "sequence.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>

#include "../autograd/ops.hpp"
#include "../autograd/tape.hpp"

namespace rwd {

// ---- sequences and masks ----

std::vector<Tensor> split_steps(const Tensor& seq) {
  if (seq.ndim() != 3)
    throw ShapeError("split_steps: sequence " + seq.shape().str() + ": expected (time, features, batch)");
  std::vector<Tensor> steps;
  const Shape s = seq.shape();
  steps.reserve(s[0]);
  if (!seq.requires_grad() || !GradMode::enabled()) {
    // Data (nothing to record): each step copied straight out, one copy instead of slice + squeeze.
    const std::size_t n = s[1] * s[2];
    for (std::size_t t = 0; t < s[0]; ++t) {
      Tensor step = Tensor::zeros({s[1], s[2]}, seq.dtype());
      if (seq.dtype() == Dtype::f32) std::copy_n(seq.data<float>() + t * n, n, step.data<float>());
      else std::copy_n(seq.data<double>() + t * n, n, step.data<double>());
      steps.push_back(std::move(step));
    }
    return steps;
  }
  // Each slice's gradient is added into its own rows of the sequence's adjoint (accumulate_slice), so
  // the backward is linear in the number of steps.
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

namespace {

// The mask's values, after checking that it is (time, batch) and holds only 0 and 1: `where` reads
// any nonzero as "real step", so a 0.5, a NaN or a −1 would be taken silently for a 1.
std::vector<double> checked_mask(const std::string& who, const Tensor& mask, std::size_t time, std::size_t batch) {
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

// Rows of the mask as constants of shape (1, batch), one per step, in the steps' dtype.
std::vector<Tensor> mask_rows(const std::string& who, const Tensor& mask, std::size_t time, std::size_t batch, Dtype dtype) {
  const std::vector<double> v = checked_mask(who, mask, time, batch);
  std::vector<Tensor> rows;
  for (std::size_t t = 0; t < time; ++t)
    rows.push_back(Tensor::from_vector(std::vector<double>(v.begin() + t * batch, v.begin() + (t + 1) * batch), {1, batch}, dtype));
  return rows;
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

  SequenceRun run;
  run.outputs.resize(T);
  State state = initial.empty() ? cell.initial_state(batch) : std::move(initial);
  for (std::size_t k = 0; k < T; ++k) {
    const std::size_t t = reverse ? T - 1 - k : k;
    auto [y, next] = cell.step(steps[t], state);
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
  }
  run.final_state = std::move(state);
  return run;
}

SequenceRun run_sequence(Cell& cell, const Tensor& seq, State initial, const Tensor& mask, bool reverse) {
  return run_sequence(cell, split_steps(seq), std::move(initial), mask, reverse);
}

// ---- Recurrent ----

Recurrent::Recurrent(std::size_t input_size, const CellFactory& make_cell, RecurrentOptions options, Generator& gen)
    : m_options(options), m_final(std::make_shared<FinalStates>()) {
  if (!make_cell) throw ValueError("Recurrent: the cell factory is empty");
  check_size("Recurrent", "num_layers", options.num_layers);
  std::vector<std::shared_ptr<Cell>> cells;
  std::size_t in = input_size;
  for (std::size_t l = 0; l < options.num_layers; ++l) {
    std::size_t out = 0;
    for (std::size_t d = 0; d < directions(); ++d) {
      cells.push_back(make_cell(in, l));
      if (!cells.back()) throw ValueError("Recurrent: the cell factory returned null for layer " + std::to_string(l));
      out = cells.back()->output_size();
    }
    in = options.bidirectional && options.merge == Merge::concat ? 2 * out : out;
  }
  build(std::move(cells), gen);
}

Recurrent::Recurrent(std::vector<std::shared_ptr<Cell>> cells, RecurrentOptions options, Generator& gen)
    : m_options(options), m_final(std::make_shared<FinalStates>()) {
  const std::size_t dirs = directions();
  if (cells.empty() || cells.size() % dirs != 0)
    throw ValueError("Recurrent: got " + std::to_string(cells.size()) + " cells; a " +
                     (dirs == 2 ? "bidirectional layer needs 2 per layer (forward, reverse)" : "layer needs at least one"));
  const std::size_t layers = cells.size() / dirs;
  if (options.num_layers != 1 && options.num_layers != layers)
    throw ValueError("Recurrent: options.num_layers is " + std::to_string(options.num_layers) + " but " +
                     std::to_string(cells.size()) + " cells make " + std::to_string(layers) + " layer" + (layers > 1 ? "s" : ""));
  m_options.num_layers = layers;
  build(std::move(cells), gen);
}

void Recurrent::build(std::vector<std::shared_ptr<Cell>> cells, Generator& gen) {
  const std::size_t dirs = directions();
  // Each layer's input must be what the layer below hands it.
  for (std::size_t i = 0; i < cells.size(); ++i) {
    if (!cells[i]) throw ValueError("Recurrent: cell " + std::to_string(i) + " is null");
    const std::size_t l = i / dirs;
    if (i % dirs == 1 && cells[i]->output_size() != cells[i - 1]->output_size())
      throw ShapeError("Recurrent: layer " + std::to_string(l) + ": the forward cell " + cells[i - 1]->repr() +
                       " and the reverse cell " + cells[i]->repr() + " must have the same output size");
    if (l > 0) {
      const std::size_t below = cells[(l - 1) * dirs]->output_size() * (dirs == 2 && m_options.merge == Merge::concat ? 2 : 1);
      if (cells[i]->input_size() != below)
        throw ShapeError("Recurrent: layer " + std::to_string(l) + ": " + cells[i]->repr() + " takes " +
                         std::to_string(cells[i]->input_size()) + " features but the layer below outputs " + std::to_string(below));
    }
    if (i % dirs == 1 && cells[i]->input_size() != cells[i - 1]->input_size())
      throw ShapeError("Recurrent: layer " + std::to_string(l) + ": the forward cell " + cells[i - 1]->repr() +
                       " and the reverse cell " + cells[i]->repr() + " must take the same input size");
  }
  for (std::size_t i = 0; i < cells.size(); ++i) {
    const std::string name = "layer" + std::to_string(i / dirs) + (i % dirs == 1 ? "_reverse" : "");
    m_layers.push_back(register_module(name, std::make_shared<Recur>(std::move(cells[i]))));
  }
  if (!(m_options.dropout >= 0.0 && m_options.dropout < 1.0))
    throw ValueError("Recurrent: dropout must be in [0, 1), got " + format_value(m_options.dropout));
  // Seeded from `gen` whether or not it is used, so adding dropout does not shift later draws.
  const std::uint32_t seed = gen.next_u32();
  if (m_options.dropout != 0.0 && m_options.num_layers > 1)
    m_dropout = register_module("dropout", std::make_shared<Dropout>(m_options.dropout, seed));
}

Recur& Recurrent::layer(std::size_t layer, bool reverse) const {
  if (layer >= num_layers() || (reverse && !bidirectional()))
    throw ValueError(repr() + ": there is no layer " + std::to_string(layer) + (reverse ? " in the reverse direction" : ""));
  return *m_layers[layer * directions() + (reverse ? 1 : 0)];
}

// The final states are kept per calling thread, so a model shared by threads for inference has no
// member that two calls write (see "Threads" in sequence.hpp). std::map's nodes never move, so the
// reference final_states() hands out stays valid while other threads add their own entries.
struct Recurrent::FinalStates {
  std::mutex mutex;
  std::map<std::thread::id, std::vector<State>> by_thread;
};

void Recurrent::set_final(std::vector<State> states) {
  std::lock_guard<std::mutex> lock(m_final->mutex);
  m_final->by_thread[std::this_thread::get_id()] = std::move(states);
}

void Recurrent::reset_state() {
  if (!m_final) return;  // moved from
  std::lock_guard<std::mutex> lock(m_final->mutex);
  m_final->by_thread.clear();
}

const std::vector<State>& Recurrent::final_states() const {
  static const std::vector<State> none;
  if (!m_final) return none;  // moved from
  std::lock_guard<std::mutex> lock(m_final->mutex);
  auto it = m_final->by_thread.find(std::this_thread::get_id());
  return it == m_final->by_thread.end() ? none : it->second;
}

const State& Recurrent::final_state(std::size_t layer, bool reverse) const {
  this->layer(layer, reverse);  // checks the indices
  const std::size_t i = layer * directions() + (reverse ? 1 : 0);
  const std::vector<State>& final = final_states();
  if (i >= final.size()) throw ValueError(repr() + ": no final state yet (run a sequence or a step first)");
  return final[i];
}

std::size_t Recurrent::input_size() const { return m_layers.front()->cell().input_size(); }

std::size_t Recurrent::output_size() const {
  const std::size_t h = m_layers.back()->cell().output_size();
  return bidirectional() && m_options.merge == Merge::concat ? 2 * h : h;
}

Tensor Recurrent::between_layers(const Tensor& y) { return m_dropout ? (*m_dropout)(y) : y; }

Tensor Recurrent::step(const Tensor& x) {
  if (bidirectional())
    throw ValueError(repr() + ": a bidirectional layer cannot run one step at a time — its reverse direction starts "
                              "from the end of the sequence; pass the whole sequence, (time, features, batch) or a vector of steps");
  refuse_batch_0(x);
  check_dtype(x);
  m_layers[0]->check_batch(x, *this);
  Tensor h = x;
  for (std::size_t l = 0; l < m_layers.size(); ++l) h = (*m_layers[l])(l == 0 ? h : between_layers(h));
  std::vector<State> final;
  for (const auto& r : m_layers) final.push_back(r->state());
  set_final(std::move(final));
  return h;
}

RecurrentRun Recurrent::run(const std::vector<Tensor>& steps, const Tensor& mask, const std::vector<State>& initial) {
  const std::size_t dirs = directions();
  if (steps.empty()) throw ValueError(repr() + ": the sequence has zero time steps: an empty sequence is refused");
  if (steps[0].ndim() < 1 || steps[0].dim(0) != input_size())
    throw ShapeError(repr() + ": step " + steps[0].shape().str() + ": expected (" + std::to_string(input_size()) +
                     ", batch) — features along axis 0");
  refuse_batch_0(steps[0], "step");
  check_dtype(steps[0]);
  const std::size_t batch = steps[0].ndim() == 2 ? steps[0].dim(1) : 0;
  if (mask.defined() && steps[0].ndim() == 2) checked_mask(repr(), mask, steps.size(), batch);
  if (!initial.empty() && initial.size() != m_layers.size())
    throw ValueError(repr() + ": got " + std::to_string(initial.size()) + " initial states; expected one per layer and direction (" +
                     std::to_string(m_layers.size()) + "), or none");
  // Each given initial state against what its cell holds a state to, named by layer and direction here
  // (the cell's own check would name only the cell).
  for (std::size_t i = 0; i < initial.size(); ++i) {
    const Cell& c = m_layers[i]->cell();
    const std::vector<Shape> want = c.state_shapes(batch);
    const std::string where = "the initial state of layer " + std::to_string(i / dirs) + (i % dirs ? " reverse" : "");
    if (initial[i].size() != want.size())
      throw ValueError(repr() + ": " + where + ": " + c.repr() + " takes " + std::to_string(want.size()) + " tensor" +
                       (want.size() > 1 ? "s" : "") + ", got " + std::to_string(initial[i].size()));
    for (std::size_t k = 0; k < want.size(); ++k)
      if (initial[i][k].shape() != want[k])
        throw ShapeError(repr() + ": " + where + ": state " + std::to_string(k) + " is " + initial[i][k].shape().str() +
                         " but must be " + want[k].str() + " for steps " + steps[0].shape().str() +
                         " — (hidden, batch) with the steps' batch");
  }

  RecurrentRun out;
  std::vector<Tensor> xs = steps;
  for (std::size_t l = 0; l < num_layers(); ++l) {
    if (l > 0)
      for (Tensor& x : xs) x = between_layers(x);
    std::vector<SequenceRun> runs;
    for (std::size_t d = 0; d < dirs; ++d) {
      const std::size_t i = l * dirs + d;
      runs.push_back(run_sequence(m_layers[i]->cell(), xs, initial.empty() ? State{} : initial[i], mask, d == 1));
      out.final_states.push_back(runs.back().final_state);
    }
    if (dirs == 1) {
      xs = std::move(runs[0].outputs);
      out.last = runs[0].last;
      continue;
    }
    auto merge = [&](const Tensor& f, const Tensor& r) { return m_options.merge == Merge::concat ? concat({f, r}, 0) : f + r; };
    for (std::size_t t = 0; t < xs.size(); ++t) xs[t] = merge(runs[0].outputs[t], runs[1].outputs[t]);
    out.last = merge(runs[0].last, runs[1].last);
  }
  out.outputs = std::move(xs);
  // Readable after backward clears the tape (as values; the history ends there, as for Recur's state).
  for (const State& s : out.final_states)
    for (const Tensor& t : s) t.keep_on_clear();
  set_final(out.final_states);
  return out;
}

Tensor Recurrent::forward(const std::vector<Tensor>& steps, const Tensor& mask, const std::vector<State>& initial) {
  RecurrentRun r = run(steps, mask, initial);
  return m_options.return_sequences ? stack_steps(r.outputs) : r.last;
}

Tensor Recurrent::forward(const Tensor& seq, const Tensor& mask, const std::vector<State>& initial) {
  if (seq.ndim() != 3 || seq.dim(1) != input_size())
    throw ShapeError(repr() + ": sequence " + seq.shape().str() + ": expected (time, " + std::to_string(input_size()) +
                     ", batch)");
  return forward(split_steps(seq), mask, initial);
}

Tensor Recurrent::forward(const Tensor& x) {
  if (x.ndim() == 3) return forward(x, Tensor(), {});
  return step(x);
}

std::string Recurrent::repr() const {
  std::string extra;
  if (num_layers() > 1) extra += ", layers=" + std::to_string(num_layers());
  if (bidirectional()) extra += std::string(", bidirectional") + (m_options.merge == Merge::sum ? ", merge=sum" : "");
  if (m_dropout) {
    char buf[32];
    std::snprintf(buf, sizeof buf, ", dropout=%g", m_options.dropout);
    extra += buf;
  }
  if (!m_options.return_sequences) extra += ", return_sequences=false";
  // "LSTMCell(2 => 3, peephole)" → "LSTM(2 => 3, peephole, …)"; any other cell is shown whole.
  const std::string c = m_layers.front()->cell().repr();
  const std::size_t open = c.find('(');
  if (open != std::string::npos && open > 4 && c.compare(open - 4, 4, "Cell") == 0 && c.back() == ')')
    return c.substr(0, open - 4) + c.substr(open, c.size() - open - 1) + extra + ")";
  return "Recurrent(" + c + extra + ")";
}

// ---- factories ----

Recurrent RNN(std::size_t input, std::size_t hidden, Activation activation, CellOptions options, RecurrentOptions recurrent,
              Generator& gen) {
  check_size("RNN", "input", input);
  check_size("RNN", "hidden", hidden);
  return Recurrent(
      input, [&](std::size_t in, std::size_t) { return std::make_shared<RNNCell>(in, hidden, activation, options, gen); },
      recurrent, gen);
}
Recurrent RNN(std::size_t input, std::size_t hidden, Activation activation, CellOptions options, Generator& gen) {
  return RNN(input, hidden, std::move(activation), options, {}, gen);
}

Recurrent LSTM(std::size_t input, std::size_t hidden, LSTMOptions options, RecurrentOptions recurrent, Generator& gen) {
  check_size("LSTM", "input", input);
  check_size("LSTM", "hidden", hidden);
  return Recurrent(
      input, [&](std::size_t in, std::size_t) { return std::make_shared<LSTMCell>(in, hidden, options, gen); }, recurrent, gen);
}
Recurrent LSTM(std::size_t input, std::size_t hidden, LSTMOptions options, Generator& gen) {
  return LSTM(input, hidden, options, {}, gen);
}

Recurrent GRU(std::size_t input, std::size_t hidden, GRUOptions options, RecurrentOptions recurrent, Generator& gen) {
  check_size("GRU", "input", input);
  check_size("GRU", "hidden", hidden);
  return Recurrent(
      input, [&](std::size_t in, std::size_t) { return std::make_shared<GRUCell>(in, hidden, options, gen); }, recurrent, gen);
}
Recurrent GRU(std::size_t input, std::size_t hidden, GRUOptions options, Generator& gen) {
  return GRU(input, hidden, options, {}, gen);
}

// ---- TimeDistributed ----

TimeDistributed::TimeDistributed(std::shared_ptr<Module> layer) : m_layer(std::move(layer)) {
  if (!m_layer) throw ValueError("TimeDistributed: the layer is null");
  register_module("layer", m_layer);
}

Tensor TimeDistributed::forward(const Tensor& x) {
  if (x.ndim() != 3) return (*m_layer)(x);
  const std::size_t T = x.dim(0), F = x.dim(1), B = x.dim(2);
  if (T == 0)
    throw ValueError(repr() + ": sequence " + x.shape().str() + " has zero time steps: an empty sequence is refused");
  refuse_batch_0(x, "sequence");
  // (time, F, batch) → (F, time, batch) → (F, time·batch): step t's columns are t·batch … t·batch + batch − 1.
  const Tensor y = (*m_layer)(reshape(permute(x, {1, 0, 2}), {F, T * B}));
  if (y.ndim() != 2 || y.dim(1) != T * B)
    throw ShapeError(repr() + ": the layer turned (" + std::to_string(F) + ", " + std::to_string(T * B) + ") into " +
                     y.shape().str() + "; it must map (features, batch) to (out, batch)");
  return permute(reshape(y, {y.dim(0), T, B}), {1, 0, 2});
}

}  // namespace rwd
