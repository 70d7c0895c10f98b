#include "recurrent.hpp"

#include <array>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>

#include "../autograd/detail/beside.hpp"
#include "../autograd/ops.hpp"
#include "detail/sequence_mask.hpp"

namespace rwd {

using detail::checked_mask;

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
  if (static_cast<int>(m_options.merge) < static_cast<int>(Merge::concat) ||
      static_cast<int>(m_options.merge) > static_cast<int>(Merge::ave))
    throw ValueError("Recurrent: merge " + std::to_string(static_cast<int>(m_options.merge)) +
                     " is not one of Merge::concat, sum, mul, ave");
  if (!(m_options.dropout >= 0.0 && m_options.dropout < 1.0))
    throw ValueError(repr() + ": dropout must be in [0, 1), got " + format_value(m_options.dropout));
  // `dropout` acts between stacked layers only: on one layer it would do nothing, without a word (PyTorch
  // warns). Refused, like every option that cannot act, so a model never trains without the dropout
  // its author asked for.
  if (m_options.dropout != 0.0 && m_options.num_layers == 1)
    throw ValueError(repr() + ": dropout " + format_value(m_options.dropout) +
                     " acts between stacked layers, and this layer has one (num_layers = 1), so it would do nothing; "
                     "for dropout in one layer use input_dropout (its inputs) or recurrent_dropout (its h), or a "
                     "Dropout layer on its outputs");
  // Seeded from `gen` whether or not it is used, so adding dropout does not shift later draws.
  const std::uint32_t seed = gen.next_u32();
  if (m_options.dropout != 0.0 && m_options.num_layers > 1)
    m_dropout = register_module("dropout", std::make_shared<Dropout>(m_options.dropout, seed));
  for (auto [p, name] : {std::pair{m_options.input_dropout, "input_dropout"}, {m_options.recurrent_dropout, "recurrent_dropout"}})
    if (!(p >= 0.0 && p < 1.0)) throw ValueError(repr() + ": " + name + " must be in [0, 1), got " + format_value(p));
  // The same draw as `dropout`'s, moved to another stream: no extra draw from `gen`.
  m_variational_gen.seed(seed ^ 0x9e3779b9u);
}

Recur& Recurrent::layer(std::size_t layer, bool reverse) const {
  if (layer >= num_layers() || (reverse && !bidirectional()))
    throw ValueError(repr() + ": there is no layer " + std::to_string(layer) + (reverse ? " in the reverse direction" : ""));
  return *m_layers[layer * directions() + (reverse ? 1 : 0)];
}

// The final states are kept per calling thread, so a model shared by threads for inference has no
// member that two calls write (see "Threads" in recurrent.hpp). std::map's nodes never move, so the
// reference final_states() hands out stays valid while other threads add their own entries. A thread's
// entries go when it ends (ThreadFinals), so a server that calls one model from a new thread for each
// request does not keep every ended thread's states.
struct Recurrent::FinalStates {
  std::mutex mutex;
  std::map<std::thread::id, std::vector<State>> by_thread;
};

namespace {

// The models this thread has left final states in; at the thread's end its entries are erased from
// those still alive.
template <class Finals>
struct ThreadFinals {
  std::vector<std::weak_ptr<Finals>> written;
  void note(const std::shared_ptr<Finals>& f) {
    for (const auto& w : written)
      if (!w.owner_before(f) && !f.owner_before(w)) return;  // noted already
    std::erase_if(written, [](const std::weak_ptr<Finals>& w) { return w.expired(); });
    written.push_back(f);
  }
  ~ThreadFinals() {
    const std::thread::id me = std::this_thread::get_id();
    for (const auto& w : written)
      if (auto f = w.lock()) {
        std::lock_guard<std::mutex> lock(f->mutex);
        f->by_thread.erase(me);
      }
  }
};

}  // namespace

void Recurrent::set_final(std::vector<State> states) {
  thread_local ThreadFinals<FinalStates> mine;
  mine.note(m_final);
  std::lock_guard<std::mutex> lock(m_final->mutex);
  m_final->by_thread[std::this_thread::get_id()] = std::move(states);
}

std::size_t detail::final_state_threads(const Recurrent& r) {
  if (!r.m_final) return 0;
  std::lock_guard<std::mutex> lock(r.m_final->mutex);
  return r.m_final->by_thread.size();
}

void Recurrent::reset_state() {
  m_step_masks.clear();  // stepping draws new variational masks at its next step
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
  for (std::size_t l = 0; l < m_layers.size(); ++l) {
    if (l > 0) h = between_layers(h);
    h = variational() ? variational_step(l, h) : (*m_layers[l])(h);
  }
  std::vector<State> final;
  for (const auto& r : m_layers) final.push_back(r->state());
  set_final(std::move(final));
  return h;
}

RecurrentRun Recurrent::run(const std::vector<Tensor>& steps, const Tensor& mask, const std::vector<State>& initial) {
  return run_layers(steps, mask, initial, true);
}

RecurrentRun Recurrent::run_layers(const std::vector<Tensor>& steps, const Tensor& mask, const std::vector<State>& initial,
                                   bool last_outputs) {
  const std::size_t dirs = directions();
  if (steps.empty()) throw ValueError(repr() + ": the sequence has zero time steps: an empty sequence is refused");
  for (std::size_t t = 0; t < steps.size(); ++t)  // (the message built only for an undefined one)
    if (!steps[t].defined()) refuse_undefined(steps[t], ("step " + std::to_string(t)).c_str());
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
      if (const Shape& got = initial[i][k].shape(); got != want[k]) {
        // The two layouts a PyTorch or Keras user brings: h0 stacked (layers·dirs, batch, hidden), or (batch, hidden).
        std::string hint;
        if (got.size() == 3)
          hint = "; PyTorch's stacked (layers·dirs, batch, hidden) h0 and c0 convert with from_torch_states";
        else if (got.size() == 2 && want[k].size() == 2 && got[0] == want[k][1] && got[1] == want[k][0])
          hint = "; this is (batch, hidden): rewind's states are (hidden, batch), one column per sequence";
        throw ShapeError(repr() + ": " + where + ": state " + std::to_string(k) + " is " + got.str() + " but must be " +
                         want[k].str() + " for steps " + steps[0].shape().str() + " — (hidden, batch) with the steps' batch" + hint);
      }
  }

  RecurrentRun out;
  std::vector<Tensor> xs = steps;
  for (std::size_t l = 0; l < num_layers(); ++l) {
    if (l > 0)
      for (Tensor& x : xs) x = between_layers(x);
    const bool outputs = last_outputs || l + 1 < num_layers();
    std::vector<SequenceRun> runs;
    if (dirs == 2 && detail::beside_pays()) {
      runs = directions_beside(l, xs, initial, mask, outputs);
    } else {
      for (std::size_t d = 0; d < dirs; ++d) {
        const std::size_t i = l * dirs + d;
        const State init = initial.empty() ? State{} : initial[i];
        Cell& cell = m_layers[i]->cell();
        const auto [m_x, m_h] = variational() ? variational_masks(cell, xs) : std::pair<Tensor, Tensor>{};
        runs.push_back(masked_sequence(cell, xs, init, mask, d == 1, outputs, m_x, m_h));
      }
    }
    for (const SequenceRun& r : runs) out.final_states.push_back(r.final_state);
    if (dirs == 1) {
      xs = std::move(runs[0].outputs);
      out.last = runs[0].last;
      continue;
    }
    auto merge = [&](const Tensor& f, const Tensor& r) {
      switch (m_options.merge) {
        case Merge::concat: return concat({f, r}, 0);
        case Merge::sum: return f + r;
        case Merge::mul: return f * r;
        case Merge::ave: return (f + r) * 0.5;
      }
      throw ValueError(repr() + ": unknown merge " + std::to_string(static_cast<int>(m_options.merge)));
    };
    if (runs[0].outputs.empty()) xs.clear();  // not kept (last_outputs false)
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
  Tensor y;
  {
    RecurrentRun r = run_layers(steps, mask, initial, m_options.return_sequences);
    y = m_options.return_sequences ? stack_steps(r.outputs) : r.last;
  }
  // The per-step outputs, now stacked, are held by the tape alone: a checkpointed run's may go (no
  // backward reads them) instead of sitting beside their stacked copy until the sweep.
  if (GradMode::enabled()) Tape::current().drop_unread();
  return y;
}

Tensor Recurrent::forward(const Tensor& seq, const Tensor& mask, const std::vector<State>& initial) {
  refuse_undefined(seq, "the sequence");
  if (seq.ndim() != 3 || seq.dim(1) != input_size()) {
    // The layouts users bring from elsewhere, when the features sit on another axis.
    std::string hint;
    if (seq.ndim() == 3 && seq.dim(0) == input_size())
      hint = "; Flux's (features, batch, time) is permute(x, {2, 0, 1})";
    else if (seq.ndim() == 3 && seq.dim(2) == input_size())
      hint = "; PyTorch's (time, batch, features) is permute(x, {0, 2, 1}), and (batch, time, features) (batch_first, "
             "Keras) permute(x, {1, 2, 0})";
    throw ShapeError(repr() + ": sequence " + seq.shape().str() + ": expected (time, " + std::to_string(input_size()) +
                     ", batch)" + hint);
  }
  return forward(split_steps(seq), mask, initial);
}

Tensor Recurrent::forward(const Tensor& x) {
  refuse_undefined(x);
  if (x.ndim() == 3) return forward(x, Tensor(), {});
  if (x.ndim() != 1 && x.ndim() != 2)  // else the step's check would read axis 0 of a 4-D input as its features
    throw ShapeError(repr() + ": input " + x.shape().str() + ": expected a sequence (time, " + std::to_string(input_size()) +
                     ", batch) or one step (" + std::to_string(input_size()) + ", batch) or (" +
                     std::to_string(input_size()) + ",)");
  return step(x);
}

std::string Recurrent::repr() const {
  std::string extra;
  if (num_layers() > 1) extra += ", layers=" + std::to_string(num_layers());
  if (bidirectional()) {
    extra += ", bidirectional";
    switch (m_options.merge) {
      case Merge::concat: break;
      case Merge::sum: extra += ", merge=sum"; break;
      case Merge::mul: extra += ", merge=mul"; break;
      case Merge::ave: extra += ", merge=ave"; break;
    }
  }
  if (m_dropout) {
    char buf[32];
    std::snprintf(buf, sizeof buf, ", dropout=%g", m_options.dropout);
    extra += buf;
  }
  for (auto [p, name] : {std::pair{m_options.input_dropout, "input_dropout"}, {m_options.recurrent_dropout, "recurrent_dropout"}})
    if (p > 0.0 && p < 1.0) {  // (a p out of range is being refused, by a message that names it)
      char buf[48];
      std::snprintf(buf, sizeof buf, ", %s=%g", name, p);
      extra += buf;
    }
  if (!m_options.return_sequences) extra += ", return_sequences=false";
  if (m_options.checkpoint.on)
    extra += ", checkpoint" + (m_options.checkpoint.every ? "=" + std::to_string(m_options.checkpoint.every) : std::string());
  // "LSTMCell(2 => 3, peephole)" → "LSTM(2 => 3, peephole, …)"; any other cell is shown whole.
  const std::string c = m_layers.front()->cell().repr();
  const std::size_t open = c.find('(');
  if (open != std::string::npos && open > 4 && c.compare(open - 4, 4, "Cell") == 0 && c.back() == ')')
    return c.substr(0, open - 4) + c.substr(open, c.size() - open - 1) + extra + ")";
  return "Recurrent(" + c + extra + ")";
}

// ---- variational dropout ----

namespace {

// A cell seen through a recurrent dropout mask: the same cell, each step its step_dropped with m_h
// (m_h ⊙ h where h enters the recurrent products; Cell's default steps from {m_h ⊙ h, rest}). Lives
// for one run_sequence (or as long as the checkpoint pieces that re-run it); the state the runner
// carries (and keeps at padded steps) stays unmasked. Everything else is the wrapped cell's, so its
// checks and messages are unchanged.
class RecurrentDropoutCell final : public Cell {
 public:
  RecurrentDropoutCell(Cell& cell, Tensor mask) : m_cell(cell), m_mask(std::move(mask)) {}

  std::pair<Tensor, State> step(const Tensor& x, const State& state) override { return m_cell.step_dropped(x, state, m_mask); }
  bool projects_input() const override { return m_cell.projects_input(); }
  Tensor project_input(const std::vector<Tensor>& xs) override { return m_cell.project_input(xs); }
  std::pair<Tensor, State> step_projected(const Tensor& projected, std::size_t first, const State& state) override {
    return m_cell.step_projected_dropped(projected, first, state, m_mask);
  }
  State initial_state(std::size_t batch) const override { return m_cell.initial_state(batch); }
  std::size_t input_size() const override { return m_cell.input_size(); }
  std::size_t output_size() const override { return m_cell.output_size(); }
  std::vector<Shape> state_shapes(std::size_t batch) const override { return m_cell.state_shapes(batch); }
  bool state_matches(std::size_t k, const Shape& got, std::size_t batch) const override {
    return m_cell.state_matches(k, got, batch);
  }
  std::string repr() const override { return m_cell.repr(); }

 private:
  Cell& m_cell;
  Tensor m_mask;
};

}  // namespace

bool Recurrent::variational() const {
  return training() && (m_options.input_dropout != 0.0 || m_options.recurrent_dropout != 0.0);
}

// m = [u ≥ p] / (1 − p), a constant: the gradient through x ⊙ m is dy ⊙ m, as Dropout's.
Tensor Recurrent::variational_mask(double p, const Shape& shape, Dtype dtype) {
  if (p == 0.0) return Tensor();
  std::vector<double> m(shape.numel());
  const double keep = 1.0 / (1.0 - p);
  for (double& v : m) v = m_variational_gen.uniform() >= p ? keep : 0.0;
  return Tensor::from_vector(m, shape, dtype);
}

SequenceRun Recurrent::layer_sequence(Cell& cell, const std::vector<Tensor>& steps, State initial, const Tensor& mask,
                                      bool reverse, bool outputs, std::shared_ptr<Cell> owner) const {
  if (!m_options.checkpoint.on) return run_sequence(cell, steps, std::move(initial), mask, reverse);
  return detail::run_sequence_checkpointed(cell, owner, steps, std::move(initial), mask, reverse,
                                           m_options.checkpoint.every, outputs);
}

std::pair<Tensor, Tensor> Recurrent::variational_masks(const Cell& cell, const std::vector<Tensor>& steps) {
  // One m_x for every step of this call (the steps all have step 0's shape: run_sequence checks).
  const Tensor m_x = variational_mask(m_options.input_dropout, steps[0].shape(), steps[0].dtype());
  const std::size_t batch = steps[0].ndim() == 2 ? steps[0].dim(1) : 0;
  const Tensor m_h = variational_mask(m_options.recurrent_dropout, cell.state_shapes(batch).at(0), steps[0].dtype());
  return {m_x, m_h};
}

SequenceRun Recurrent::masked_sequence(Cell& cell, const std::vector<Tensor>& steps, State initial, const Tensor& mask,
                                       bool reverse, bool outputs, const Tensor& m_x, const Tensor& m_h) const {
  std::vector<Tensor> masked;  // m_x ⊙ x_t (only with input dropout)
  if (m_x.defined())
    for (const Tensor& x : steps) masked.push_back(x * m_x);
  const std::vector<Tensor>& xs = m_x.defined() ? masked : steps;
  if (!m_h.defined()) return layer_sequence(cell, xs, std::move(initial), mask, reverse, outputs);
  auto dropped = std::make_shared<RecurrentDropoutCell>(cell, m_h);
  return layer_sequence(*dropped, xs, std::move(initial), mask, reverse, outputs, dropped);  // pieces keep `dropped`
}

// Layer l's two directions at once: the forward one here, the reverse one beside it on another thread,
// on a tape of its own that joins this one as one entry (autograd/detail/beside.hpp). The variational
// masks are drawn first, here, in the order the one-after-the-other path draws them.
std::vector<SequenceRun> Recurrent::directions_beside(std::size_t l, const std::vector<Tensor>& xs,
                                                      const std::vector<State>& initial, const Tensor& mask, bool outputs) {
  std::pair<Tensor, Tensor> masks[2];
  if (variational())
    for (std::size_t d = 0; d < 2; ++d) masks[d] = variational_masks(m_layers[2 * l + d]->cell(), xs);
  // Each direction's inputs are the steps, then its initial state; its outputs the per-step outputs,
  // `last`, then the final state.
  const std::size_t T = xs.size();
  auto n_state = std::make_shared<std::array<std::size_t, 2>>();  // each direction's, as its run returned it
  auto direction = [this, l, T, mask, outputs, masks, n_state](std::size_t d) {
    return [this, l, d, T, mask, outputs, m = masks[d], n_state](const std::vector<Tensor>& in) {
      const std::vector<Tensor> steps(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(T));
      State init(in.begin() + static_cast<std::ptrdiff_t>(T), in.end());
      SequenceRun r = masked_sequence(m_layers[2 * l + d]->cell(), steps, std::move(init), mask, d == 1, outputs,
                                      m.first, m.second);
      (*n_state)[d] = r.final_state.size();
      std::vector<Tensor> flat = std::move(r.outputs);
      flat.push_back(r.last);
      flat.insert(flat.end(), r.final_state.begin(), r.final_state.end());
      return flat;
    };
  };
  std::vector<Tensor> ins[2];
  for (std::size_t d = 0; d < 2; ++d) {
    ins[d] = xs;
    if (!initial.empty()) ins[d].insert(ins[d].end(), initial[2 * l + d].begin(), initial[2 * l + d].end());
  }
  auto [fwd, rev] = detail::run_beside(direction(0), ins[0], direction(1), ins[1], "layer" + std::to_string(l) + "_reverse");
  std::vector<SequenceRun> runs(2);
  for (std::size_t d = 0; d < 2; ++d) {
    std::vector<Tensor>& flat = d == 0 ? fwd : rev;
    const std::size_t n_out = flat.size() - 1 - (*n_state)[d];
    runs[d].outputs.assign(flat.begin(), flat.begin() + static_cast<std::ptrdiff_t>(n_out));
    runs[d].last = flat[n_out];
    runs[d].final_state.assign(flat.begin() + static_cast<std::ptrdiff_t>(n_out) + 1, flat.end());
  }
  return runs;
}

Tensor Recurrent::variational_step(std::size_t l, const Tensor& x) {
  Recur& r = *m_layers[l];
  const std::size_t batch = x.ndim() == 2 ? x.dim(1) : 0;
  if (m_step_masks.size() <= l) {  // the first step after reset: this layer's masks (leaves, so they
                                   // outlive the tape's clear), kept until reset
    const Tensor m_x = variational_mask(m_options.input_dropout, x.shape(), x.dtype());
    const Tensor m_h = variational_mask(m_options.recurrent_dropout, r.cell().state_shapes(batch).at(0), x.dtype());
    m_step_masks.emplace_back(m_x, m_h);
  }
  const auto& [m_x, m_h] = m_step_masks[l];
  const Tensor xin = m_x.defined() ? x * m_x : x;
  // The cell's step_dropped puts m_h on h where it enters the recurrent products; the carried state stays unmasked.
  return m_h.defined() ? r.step_dropped(xin, m_h) : r(xin);
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

std::vector<Tensor> to_torch_states(const std::vector<State>& states) {
  if (states.empty()) throw ValueError("to_torch_states: no states");
  const std::size_t parts = states[0].size();
  std::vector<Tensor> out;
  for (std::size_t k = 0; k < parts; ++k) {
    std::vector<Tensor> rows;  // (batch, hidden) per layer and direction
    for (std::size_t i = 0; i < states.size(); ++i) {
      if (states[i].size() != parts)
        throw ShapeError("to_torch_states: state " + std::to_string(i) + " has " + std::to_string(states[i].size()) +
                         " components, state 0 has " + std::to_string(parts));
      const Shape s = states[i][k].shape(), s0 = states[0][k].shape();
      if (s.ndim() != 2 || s != s0)
        throw ShapeError("to_torch_states: component " + std::to_string(k) + " of state " + std::to_string(i) + " is " +
                         s.str() + "; expected (hidden, batch) like state 0's " + s0.str());
      rows.push_back(transpose(states[i][k]));
    }
    out.push_back(stack(rows, 0));
  }
  return out;
}

std::vector<State> from_torch_states(const std::vector<Tensor>& stacked) {
  if (stacked.empty()) throw ValueError("from_torch_states: no tensors (h0, and c0 for an LSTM)");
  const Shape s0 = stacked[0].shape();
  for (std::size_t k = 0; k < stacked.size(); ++k) {
    const Shape s = stacked[k].shape();
    if (s.ndim() != 3 || s != s0)
      throw ShapeError("from_torch_states: tensor " + std::to_string(k) + " is " + s.str() +
                       "; expected (layers·dirs, batch, hidden) like tensor 0's " + s0.str());
  }
  std::vector<State> out(s0[0]);
  for (std::size_t i = 0; i < s0[0]; ++i)
    for (const Tensor& t : stacked) out[i].push_back(transpose(squeeze(slice(t, 0, i, i + 1), 0)));
  return out;
}

}  // namespace rwd
