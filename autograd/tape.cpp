#include "tape.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <mutex>
#include <unordered_set>

#include "../core/detail/impl.hpp"
#include "ops.hpp"
#include "../kernels/gemm.hpp"

namespace rwd {

namespace {
thread_local Tape* t_current = nullptr;  // the thread's current tape (null: its root), kept by TapeStack
thread_local bool t_grad_enabled = true;

// A misuse no destructor can report by throwing, and that would leave freed memory in use.
[[noreturn]] void fatal(const std::string& what) {
  std::fprintf(stderr, "rewind: fatal: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}
}  // namespace

// ---- the thread's stack of current tapes ----

// One place per Tape made on this thread and per CurrentTape scope, in the order they began. A place
// names its tape until the tape or the place's owner ends; it is taken off the stack once its owner
// has ended and nothing above it is left. The current tape is the topmost place that names one
// (t_current caches it, so Tape::current costs what it did). So tapes and scopes may end in any order
// — `tape = std::make_unique<Tape>()` makes the new tape before the old one goes, a tape may die
// inside a scope that names it — and the current tape is never a freed one.
struct TapeStack {
  struct Place {
    Tape* tape;         // null once the tape (or the scope) ended
    const void* owner;  // the Tape or CurrentTape that put it there; null once that ended
  };
  std::vector<Place> places;

  TapeStack();
  ~TapeStack();  // the thread ends: its places stop naming their tapes
  static TapeStack& mine();

  std::size_t push(Tape& tape, const void* owner) {
    places.push_back({&tape, owner});
    tape.m_named.fetch_add(1);
    t_current = &tape;
    return places.size() - 1;
  }
  void unname(Place& p) {
    if (p.tape) p.tape->m_named.fetch_sub(1);
    p.tape = nullptr;
  }
  // Takes the ended places off the top and finds the current tape again.
  void settle() {
    while (!places.empty() && !places.back().owner) places.pop_back();
    t_current = nullptr;
    for (auto p = places.rbegin(); p != places.rend() && !t_current; ++p) t_current = p->tape;
  }
};

namespace {
// This thread's stack: null before its first Tape or scope, and again once the thread's end has torn it
// down (a thread_local Tape destroyed after it then has no place to clear).
thread_local TapeStack* t_stack = nullptr;
}  // namespace

TapeStack::TapeStack() { t_stack = this; }

TapeStack::~TapeStack() {
  for (Place& p : places) unname(p);
  t_stack = nullptr;
  t_current = nullptr;
}

TapeStack& TapeStack::mine() {
  thread_local TapeStack stack;
  return stack;
}

// ---- Tape ----

Tape::Tape() { TapeStack::mine().push(*this, this); }

Tape::Tape(RootTag) {}  // no place on any stack: current only inside a CurrentTape scope

Tape::~Tape() {
  if (m_sweeps)
    fatal("a Tape of " + std::to_string(m_nodes.size()) + " entries was destroyed while a sweep walks it (from a "
          "gradient-ready hook or a backward function of that sweep): the sweep would go on over freed entries; "
          "destroy or clear the tape after backward() returns");
  if (TapeStack* stack = t_stack) {
    for (TapeStack::Place& p : stack->places) {
      if (p.tape == this) stack->unname(p);
      if (p.owner == this) p.owner = nullptr;
    }
    stack->settle();
  }
  if (m_named.load() != 0)
    fatal("a Tape was destroyed on another thread than one where it is still the current tape (the thread that "
          "made it, or one in a CurrentTape scope of it): that thread would record onto freed memory; destroy a "
          "Tape on the thread that made it, or hand a Tape::make_detached() tape between threads");
  release_all();
}

std::unique_ptr<Tape> Tape::make_detached() { return std::unique_ptr<Tape>(new Tape(RootTag{})); }

Tape& Tape::current() {
  if (t_current) return *t_current;
  thread_local Tape root{RootTag{}};
  return root;
}

namespace {
std::atomic<std::size_t> drop_min_bytes{std::size_t{1} << 20};
// numel() · dtype_size(dtype()) in one visit of the value: Tape::push runs it for every entry, and the
// two accessors cost tiny's training step 200 instructions more (callgrind).
std::size_t value_bytes(const Tensor& t) {
  return std::visit([](const auto& a) { return a.size() * sizeof(typename std::decay_t<decltype(a)>::value_type); },
                    t.impl().value);
}
}  // namespace

std::size_t detail::set_drop_min_bytes(std::size_t bytes) { return drop_min_bytes.exchange(bytes); }

std::int64_t Tape::push(Node node) {
  m_value_bytes += value_bytes(node.output);
  if (node.more_outputs) [[unlikely]]
    for (const Tensor& t : *node.more_outputs) m_value_bytes += value_bytes(t);
  m_nodes.push_back(std::move(node));
  const std::int64_t index = static_cast<std::int64_t>(m_nodes.size()) - 1;
  if (m_probe && m_probe->entry == index) [[unlikely]] {
    Tensor& out = m_nodes.back().output;
    if (out.dtype() != Dtype::f64 || out.is_view() || m_probe->element >= out.numel())
      throw TapeError(std::string("output probe: entry #") + std::to_string(index) + " (" + m_nodes.back().op +
                      ") " + out.shape().str() + " cannot be nudged at element " + std::to_string(m_probe->element));
    out.data<double>()[m_probe->element] += m_probe->delta;
  }
  return index;
}

namespace {

// Detaches one output of entry `n` from `tape`: a constant if kept, released otherwise.
void release_output(const Tape* tape, const Node& n, const Tensor& output) {
  detail::TensorImpl* out = output.impl_ptr().get();
  if (!out || out->tape != tape) return;
  out->tape = nullptr;
  out->node = -1;
  out->output = 0;
  out->tape_uses = 0;  // counted again if it is recorded on another tape
  out->read_by_backward = false;
  if (out->keep_on_clear) {
    // Becomes a constant: value kept, history and gradient dropped.
    out->requires_grad = false;
    out->keep_on_clear = false;
    out->released_op = n.op;  // remembered, so a later backward from it can say what happened
    out->grad = Tensor();
  } else {
    out->released = true;
    out->released_op = n.op;
    // The values go back to the buffer cache; the array keeps its shape (for the messages that name
    // it: detail::released_shape) rather than being replaced by a fresh empty array, which as a 0-d
    // array would take a buffer of its own. Nothing reads a released array's values: every accessor
    // checks `released` first (check_alive).
    std::visit([](auto& a) { a.storage().clear(); }, out->value);
    out->grad = Tensor();
  }
}

}  // namespace

// Releases in one forward loop: entries own tensors, tensors own no entries, so nothing recurses.
std::int64_t Tape::step_of(std::size_t i) const {
  // The last mark at or before entry i.
  auto it = std::upper_bound(m_steps.begin(), m_steps.end(), i,
                             [](std::size_t at, const std::pair<std::size_t, std::int64_t>& m) { return at < m.first; });
  return it == m_steps.begin() ? -1 : std::prev(it)->second;
}

void Tape::clear() {
  if (m_sweeps) [[unlikely]]
    throw TapeError("Tape::clear: the tape is being swept (" + std::to_string(m_nodes.size()) +
                    " entries): a backward function, a gradient-ready hook or a checkpoint's function cleared it, "
                    "or ran a backward() on it without retain, or a step-through ReverseSweep is not done; clear "
                    "it once the sweep is over (or pass retain to the inner backward)");
  release_all();
}

void Tape::release_all() {
  m_trace.reset();
  m_drop_from = 0;
  m_value_bytes = 0;
  m_steps.clear();
  for (Node& n : m_nodes) {
    release_output(this, n, n.output);
    for (std::size_t k = 1; k < n.num_outputs(); ++k) release_output(this, n, n.output_at(k));
  }
  // deque::clear frees the entries' blocks but keeps its map of block pointers, sized for the longest
  // tape so far (about 3 bytes an entry: 5 MB after a 100,000-step LSTM unroll, held for good). A long
  // tape gets a fresh deque instead; a short one keeps its map, so a small step allocates nothing here.
  if (m_nodes.size() > 4096)
    std::deque<Node>().swap(m_nodes);
  else
    m_nodes.clear();
}

namespace {

// Frees t's value if it belongs to `tape`, no backward reads it, and nothing but the tape holds it:
// its own entry (1) and the entries that take it as an input (tape_uses). Its shape stays.
void drop_if_unread(const Tape* tape, const Tensor& t) {
  detail::TensorImpl* p = t.impl_ptr().get();
  if (!p || p->tape != tape || p->read_by_backward || p->dropped || p->released || p->keep_on_clear) return;
  if (t.impl_ptr().use_count() != 1 + static_cast<long>(p->tape_uses)) return;  // a handle or a closure holds it
  std::visit([](auto& a) { a.storage().clear(); }, p->value);
  p->dropped = true;
}

}  // namespace

void Tape::drop_unread(bool whole_tape) {
  if (m_keep_values || m_value_bytes < drop_min_bytes.load(std::memory_order_relaxed)) return;
  const std::size_t end = m_nodes.size();
  if (whole_tape) m_drop_from = 0;
  for (std::size_t i = std::min(m_drop_from, end); i < end; ++i) {
    const Node& n = m_nodes[i];
    for (std::size_t k = 0; k < n.num_outputs(); ++k) drop_if_unread(this, n.output_at(k));
    for (const Tensor& x : n.inputs)  // values from before, whose last handle outside went since
      if (x.impl_ptr()->node >= 0 && static_cast<std::size_t>(x.impl_ptr()->node) < m_drop_from) drop_if_unread(this, x);
  }
  m_drop_from = end;
}

void Tape::truncate(std::size_t size) {
  if (size >= m_nodes.size()) return;
  std::size_t bytes = 0;  // what push() counted for them (less what was dropped since: the gate is a floor)
  for (std::size_t i = size; i < m_nodes.size(); ++i) {
    const Node& n = m_nodes[i];
    for (std::size_t k = 0; k < n.num_outputs(); ++k) bytes += value_bytes(n.output_at(k));
    release_output(this, n, n.output);
    for (std::size_t k = 1; k < n.num_outputs(); ++k) release_output(this, n, n.output_at(k));
  }
  m_nodes.erase(m_nodes.begin() + static_cast<std::ptrdiff_t>(size), m_nodes.end());
  m_value_bytes -= std::min(m_value_bytes, bytes);
  while (!m_steps.empty() && m_steps.back().first >= size) m_steps.pop_back();
  m_drop_from = std::min(m_drop_from, size);
  if (!m_steps.empty() && m_steps.back().second >= 0) m_steps.emplace_back(size, -1);  // nor what comes next
}

CurrentTape::CurrentTape(Tape& tape) : m_place(TapeStack::mine().push(tape, this)) {}

CurrentTape::~CurrentTape() {
  TapeStack* stack = t_stack;
  if (!stack) return;  // the thread's end tore the stack down first
  // Its place is still there (its owner, this, had not ended) — on the thread that opened the scope.
  if (m_place >= stack->places.size() || stack->places[m_place].owner != this)
    fatal("a CurrentTape scope was ended on another thread than the one that opened it");
  TapeStack::Place& p = stack->places[m_place];
  stack->unname(p);
  p.owner = nullptr;
  stack->settle();
}

// ---- grad mode ----

bool GradMode::enabled() { return t_grad_enabled; }
void GradMode::set_enabled(bool enabled) { t_grad_enabled = enabled; }

// ---- backward context ----

// A backward function (a custom op's, typically) named an input or output the entry does not have.
void BackwardContext::throw_no_such(const char* what, bool input, std::size_t k) const {
  const char* kind = input ? "input" : "output";
  const std::size_t have = input ? m_node.inputs.size() : m_node.num_outputs();
  throw TapeError(std::string(m_node.op) + ": its backward called " + what + " for " + kind + " " + std::to_string(k) +
                  ", but the entry has " + std::to_string(have) + " " + kind + (have == 1 ? "" : "s"));
}

bool BackwardContext::needs_grad(std::size_t i) const {
  if (i >= m_node.inputs.size()) [[unlikely]] throw_no_such("needs_grad", true, i);
  return m_node.inputs[i].requires_grad();
}

void BackwardContext::accumulate(std::size_t i, const Tensor& g) {
  if (i >= m_node.inputs.size()) [[unlikely]] throw_no_such("accumulate", true, i);
  const Tensor& x = m_node.inputs[i];
  if (!x.requires_grad()) return;
  if (!detail::same_shape(g.impl(), x.impl()))
    throw_shape_error(m_node.op, {{"input", x.shape()}, {"gradient", g.shape()}},
                      "backward produced a gradient for input " + std::to_string(i) +
                          " whose shape differs from the input's");
  if (g.dtype() != x.dtype())
    throw DtypeError(std::string(m_node.op) + ": backward produced a " + dtype_name(g.dtype()) +
                     " gradient for " + dtype_name(x.dtype()) + " input " + std::to_string(i));
  Tensor& slot = m_grads[i];
  slot = slot.defined() ? add(slot, g) : g;
}

void BackwardContext::accumulate_slice(std::size_t i, const Tensor& g, int axis, std::size_t start, std::size_t stop,
                                       std::size_t step) {
  if (i >= m_node.inputs.size()) [[unlikely]] throw_no_such("accumulate_slice", true, i);
  const Tensor& x = m_node.inputs[i];
  if (!x.requires_grad()) return;
  if (GradMode::enabled()) {  // create_graph: the differentiable way
    accumulate(i, unslice(g, x.shape(), axis, start, stop, step));
    return;
  }
  if (g.dtype() != x.dtype())
    throw DtypeError(std::string(m_node.op) + ": backward produced a " + dtype_name(g.dtype()) + " gradient for " +
                     dtype_name(x.dtype()) + " input " + std::to_string(i));
  // The region must lie inside the input and g must fill it exactly: it is written in place.
  const Shape sx = x.shape();
  const std::size_t ax = normalize_axis(m_node.op, axis, sx);
  Shape expected = sx;
  expected[ax] = stop > start && step > 0 ? (stop - start + step - 1) / step : 0;
  if (step == 0 || start > stop || stop > sx[ax] || g.shape() != expected)
    throw_shape_error(m_node.op, {{"input", sx}, {"gradient", g.shape()}},
                      "backward produced a gradient for input " + std::to_string(i) + " at [" + std::to_string(start) +
                          ":" + std::to_string(stop) + ":" + std::to_string(step) + "] along axis " +
                          std::to_string(axis) + " that does not fit that region " + expected.str());
  m_deferred.regions.push_back({i, g, axis, start, stop, step});
}

void BackwardContext::accumulate_matmul(std::size_t i, const Tensor& a, const Tensor& b, bool ta, bool tb) {
  if (i >= m_node.inputs.size()) [[unlikely]] throw_no_such("accumulate_matmul", true, i);
  const Tensor& x = m_node.inputs[i];
  if (!x.requires_grad()) return;
  if (GradMode::enabled()) {  // create_graph: the differentiable way
    accumulate(i, matmul(a, b, ta, tb));
    return;
  }
  const Shape s = kernels::matmul_shape(m_node.op, a, b, ta, tb);
  if (s != x.shape())
    throw_shape_error(m_node.op, {{"input", x.shape()}, {"gradient", s}},
                      "backward produced a gradient for input " + std::to_string(i) +
                          " whose shape differs from the input's");
  if (a.dtype() != x.dtype())
    throw DtypeError(std::string(m_node.op) + ": backward produced a " + dtype_name(a.dtype()) + " gradient for " +
                     dtype_name(x.dtype()) + " input " + std::to_string(i));
  m_deferred.products.push_back({i, a, b, ta, tb});
}

// ---- recording ----

std::size_t output_index(const Tensor& t) { return t.defined() ? t.impl().output : 0; }

namespace {

// The tape to record onto, or null when nothing is recorded (grad mode off, or no input needs a
// gradient). Checks every input belongs to that tape.
Tape* recording_tape(const char* op, const std::vector<Tensor>& inputs) {
  if (!GradMode::enabled()) return nullptr;
  bool any = false;
  for (const Tensor& x : inputs) any = any || x.requires_grad();
  if (!any) return nullptr;
  Tape& tape = Tape::current();
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const detail::TensorImpl& p = inputs[i].impl();
    if (p.tape && p.tape != &tape)
      throw TapeError(std::string(op) + ": input " + std::to_string(i) +
                      " was recorded on another tape than the current one; detach() it to use it here");
  }
  return &tape;
}

void check_fresh(const char* op, const detail::TensorImpl& out) {
  if (out.tape || out.requires_grad)
    throw TapeError(std::string(op) + ": the output must be a fresh tensor (it is already recorded or a parameter)");
}

// The entry about to be recorded takes `inputs`, and its backward reads those `reads` says (a
// Primitive's bits): counted on each input of this tape, for Tape::drop_unread.
void note_uses(const Tape& tape, const std::vector<Tensor>& inputs, std::uint32_t reads) {
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    detail::TensorImpl& p = *inputs[k].impl_ptr();
    if (p.tape != &tape) continue;
    ++p.tape_uses;
    // Bits 0…30 name inputs one by one; past them, an input counts as read if any input is (a stack
    // or concat of many steps reads none of them).
    if (k < 31 ? (reads >> k & 1u) != 0 : (reads & ~kReadsOutput) != 0) p.read_by_backward = true;
  }
}

// Appends the entry op(inputs) → outputs[0…n) (checked fresh) and marks each output as its k-th.
void push_entry(Tape& tape, const char* op, const char* rule, std::vector<Tensor>&& inputs, const Tensor* outputs,
                std::size_t n, BackwardFn&& backward) {
  for (std::size_t k = 0; k < n; ++k) check_fresh(op, outputs[k].impl());
  note_uses(tape, inputs, kReadsAll);
  for (std::size_t k = 0; k < n; ++k) outputs[k].impl().read_by_backward = true;
  Node node;
  node.op = op;
  node.rule = rule;
  node.inputs = std::move(inputs);
  node.output = outputs[0];
  if (n > 1) node.more_outputs = std::make_unique<std::vector<Tensor>>(outputs + 1, outputs + n);
  node.backward = std::move(backward);
  const std::int64_t index = tape.push(std::move(node));
  for (std::size_t k = 0; k < n; ++k) {
    detail::TensorImpl& out = outputs[k].impl();
    out.tape = &tape;
    out.requires_grad = true;
    out.node = index;
    out.output = static_cast<std::uint32_t>(k);
  }
}

// The one-output case of push_entry, kept apart: it is every primitive's path, and sharing push_entry's
// loops cost about 180 instructions a tiny training step (callgrind) through what the compiler then
// stopped inlining.
Tensor record_impl(const char* op, std::vector<Tensor>&& inputs, Tensor output, const char* rule,
                   BackwardFn&& backward, std::uint32_t reads = kReadsAll) {
  Tape* tape = recording_tape(op, inputs);
  if (!tape) return output;
  detail::TensorImpl& out = output.impl();
  check_fresh(op, out);
  note_uses(*tape, inputs, reads);
  out.read_by_backward = (reads & kReadsOutput) != 0;
  Node node;
  node.op = op;
  node.rule = rule;
  node.inputs = std::move(inputs);
  node.output = output;
  node.backward = std::move(backward);
  out.tape = tape;
  out.requires_grad = true;
  out.node = tape->push(std::move(node));
  return output;
}

// A custom op's forward returned `out`: an input, a parameter, a recorded value or one of `earlier`
// (outputs before it) is copied, never recorded as the entry's output.
Tensor fresh_output(Tensor out, const std::vector<Tensor>& inputs, const Tensor* earlier, std::size_t n_earlier) {
  bool alias = out.impl().tape || out.requires_grad() || out.impl().grad.defined();
  for (const Tensor& x : inputs) alias = alias || x.same(out);
  for (std::size_t j = 0; j < n_earlier; ++j) alias = alias || earlier[j].same(out);
  return alias ? out.detach() : out;
}

}  // namespace

Tensor record(const char* op, std::initializer_list<Tensor> inputs, Tensor output, const char* rule,
              BackwardFn backward) {
  return record_impl(op, std::vector<Tensor>(inputs), std::move(output), rule, std::move(backward));
}

Tensor record(const char* op, std::vector<Tensor> inputs, Tensor output, const char* rule, BackwardFn backward) {
  return record_impl(op, std::move(inputs), std::move(output), rule, std::move(backward));
}

Tensor record(const Primitive& prim, std::initializer_list<Tensor> inputs, Tensor output, BackwardFn backward) {
  return record_impl(prim.op, std::vector<Tensor>(inputs), std::move(output), prim.rule, std::move(backward), prim.reads);
}

Tensor record(const Primitive& prim, std::vector<Tensor> inputs, Tensor output, BackwardFn backward) {
  return record_impl(prim.op, std::move(inputs), std::move(output), prim.rule, std::move(backward), prim.reads);
}

std::vector<Tensor> record_multi(const char* op, std::vector<Tensor> inputs, std::vector<Tensor> outputs,
                                 const char* rule, BackwardFn backward) {
  if (outputs.empty()) throw TapeError(std::string(op) + ": an entry needs at least one output");
  for (std::size_t k = 0; k < outputs.size(); ++k) {
    if (!outputs[k].defined())
      throw TapeError(std::string(op) + ": output " + std::to_string(k) + " is an undefined tensor");
    for (std::size_t j = 0; j < k; ++j)
      if (outputs[j].same(outputs[k]))
        throw TapeError(std::string(op) + ": outputs " + std::to_string(j) + " and " + std::to_string(k) +
                        " are the same tensor");
  }
  if (Tape* tape = recording_tape(op, inputs))
    push_entry(*tape, op, rule, std::move(inputs), outputs.data(), outputs.size(), std::move(backward));
  return outputs;
}

const char* intern(const std::string& s) {
  static std::mutex mutex;
  static std::unordered_set<std::string> strings;
  std::lock_guard<std::mutex> lock(mutex);
  return strings.insert(s).first->c_str();
}

Tensor custom_op(const std::string& name, std::vector<Tensor> inputs,
                 const std::function<Tensor(const std::vector<Tensor>&)>& forward, BackwardFn backward,
                 const std::string& rule) {
  const char* op = intern(name);
  Tensor out;
  {
    NoGradGuard no_grad;
    out = forward(inputs);
  }
  if (!out.defined()) throw TapeError(name + ": custom op forward returned an undefined tensor");
  out = fresh_output(std::move(out), inputs, nullptr, 0);
  return record_impl(op, std::move(inputs), std::move(out), intern(rule), std::move(backward));
}

std::vector<Tensor> custom_op_multi(const std::string& name, std::vector<Tensor> inputs,
                                    const std::function<std::vector<Tensor>(const std::vector<Tensor>&)>& forward,
                                    BackwardFn backward, const std::string& rule) {
  const char* op = intern(name);
  std::vector<Tensor> outs;
  {
    NoGradGuard no_grad;
    outs = forward(inputs);
  }
  if (outs.empty()) throw TapeError(name + ": custom op forward returned no outputs");
  for (std::size_t k = 0; k < outs.size(); ++k) {
    Tensor& out = outs[k];
    if (!out.defined())
      throw TapeError(name + ": custom op forward returned an undefined tensor as output " + std::to_string(k));
    out = fresh_output(std::move(out), inputs, outs.data(), k);
  }
  return record_multi(op, std::move(inputs), std::move(outs), intern(rule), std::move(backward));
}

}  // namespace rwd
