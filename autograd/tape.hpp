// rewind/autograd/tape.hpp — the tape, explained once.
//
//  Reverse mode on a tape (a Wengert list)
//  ---------------------------------------
//  Every primitive op that sees an input requiring a gradient appends one *entry* to the current
//  tape: its name and rule (one Primitive of autograd/primitives.hpp), its input tensors, its output
//  tensor (or several: a custom op may return outputs and a final state as one entry) and a backward
//  function — and nothing else, so a 10,000-step tape holds 10,000 small entries. The tape is a plain
//  vector, so entries sit in the order they were computed, and every input of entry i was produced
//  by an entry before i (or is a leaf: a parameter, an input, a constant).
//
//        leaves            tape (recording order) ───────────────────────────────▶
//      ┌────────┐    ┌──────────────┐  ┌──────────────┐  ┌──────────────┐
//      │ W  (p) │──┐ │ #0 matmul    │  │ #1 add       │  │ #2 tanh      │  …  #k  loss
//      │ x      │──┴▶│ in: W, x     │─▶│ in: #0, b    │─▶│ in: #1       │
//      │ b  (p) │───────────────────────▶ out: (5, 1)  │  │ out: (5, 1)  │
//      └────────┘    └──────────────┘  └──────────────┘  └──────────────┘
//                    ◀──────────────────────────────────────────── backward: i = k … 0
//
//  backward(loss) seeds the loss's adjoint with 1 and walks the entries in reverse with a loop.
//  Because every consumer of entry i comes after i, when the sweep reaches i its adjoint dy is
//  complete; the entry's backward function turns dy into adjoints for its inputs.
//
//  THE ACCUMULATE RULE: backward functions never assign, they ADD. An input used twice
//  (y = x*x + x) receives one contribution per use, and a leaf's .grad() keeps adding across
//  backward calls until zero_grad(). Every op's backward reports through
//  BackwardContext::accumulate, which does the `+=` — or, for the two shapes of gradient that are
//  cheaper to add where they land, accumulate_slice (a slice's region) and accumulate_matmul (a
//  matrix product, run by GEMM with β = 1 straight into the adjoint it adds to).
//
//  Backward functions are written with the same differentiable ops as the forward pass. Normally
//  they run with recording off; with create_graph they record too, so the gradient itself has a
//  history and can be differentiated again (double backward, Hessian-vector products).
//
//  Freeing order. The tape owns its entries and, through them, the intermediate values. backward()
//  clears the tape when it is done (unless asked to retain it): entries are released front to back in
//  one loop — no entry owns another, so there is no recursion and a 10,000-step unroll frees like a
//  3-step one. Leaves (parameters, inputs) are owned by the user's handles and outlive any tape. An
//  intermediate handle kept past the clear is marked released; touching its value throws TapeError
//  (call detach(), or keep_on_clear() for state carried between steps).
//
//  What the entry does NOT hold: the adjoints. The sweep keeps them by tape index while it runs and
//  drops each one when its entry has been processed; a sweep with keep_adjoints copies what each
//  entry received and sent into a side table (SweepTrace, backward.hpp) that the explain views and
//  the DOT graph read — the tape points to the last one, the entries never carry it.
//
//  Several outputs. An entry may produce outputs y₀ … yₙ₋₁ (record_multi, custom_op_multi); each
//  output tensor knows its (entry, output index). The sweep collects each output's adjoint, and
//  when it reaches the entry calls the backward once, with grad_out(k) for each output — zeros for
//  an output that nothing downstream used.
//
//  Gradient-ready. A leaf (a parameter) receives its last contribution at the EARLIEST entry that
//  uses it, because the sweep runs from the last entry to the first. A sweep with a gradient-ready
//  hook registered (on_grad_ready, backward.hpp) stamps each leaf with that first consumer and
//  calls the hook as soon as the sweep has passed it: the .grad() it sees is final for this sweep
//  (GEMMs into .grad() with β = 1 and slice regions included). That is where an overlapped
//  all-reduce of gradient buckets, a batched weight-gradient GEMM or an optimizer step in the
//  backward attaches; with no hook registered the sweep pays one branch per entry.
//
//        tape:   #0 matmul(W, x)   #1 add(#0, b)   #2 matmul(W, #1)   #3 sum(#2)
//        first consumer:  W → #0,  b → #1
//        sweep:  #3 → #2 → #1 [b ready] → #0 [W ready]
//
//  Values no backward reads. Each Primitive says which values its backward reads (Primitive::reads:
//  sigmoid its output, mul its operands, add and slice none). The tape counts the entries that take
//  each value, and drop_unread() frees a value that no backward reads once nothing outside the tape
//  holds it — the entry, its shape and its history stay. A recurrent layer calls it at every time
//  step, so an LSTM step keeps its gates and states, not its pre-activations (tests/test_tape_memory).
//
//  Re-runs. A checkpoint entry (autograd/checkpoint.hpp) keeps only its inputs and outputs; when the
//  sweep reaches it, it has the sweep record its computation again at the end of the tape
//  (BackwardContext::rerun), sweeps those entries in its place, and drops them.
//
//  Each thread has a default tape; constructing a Tape makes it the current one for its scope
//  (RAII), and destroying it clears it and restores the previous one. The current tapes of a thread
//  are a stack of Tapes and CurrentTape scopes; a Tape destroyed while a scope or a later Tape still
//  names it leaves that place empty, so the thread's current tape is never a freed one, whatever
//  the order things end in. A Tape still current on another thread, or destroyed from inside a sweep
//  of itself (a gradient-ready hook), would leave freed memory in use there: that aborts the process
//  with a message (a destructor cannot throw).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/tensor.hpp"
#include "primitives.hpp"

namespace rwd {

class BackwardContext;
struct SweepTrace;

/// The backward function of one tape entry.
using BackwardFn = std::function<void(BackwardContext&)>;

/// One entry of the tape: output(s) = op(inputs), with the function that sends adjoints back.
/// Nothing else: the adjoints live in the sweep (and, for the explain views, in a SweepTrace).
struct Node {
  const char* op = "";               ///< op name, as printed ("matmul", "tanh", or a custom op's name)
  const char* rule = "";             ///< the backward rule as text (a Primitive's, autograd/primitives.hpp)
  std::vector<Tensor> inputs;        ///< the operands, as recorded
  Tensor output;                     ///< the value this entry produced (its output 0)
  std::unique_ptr<std::vector<Tensor>> more_outputs;  ///< outputs 1, 2, … of a multi-output entry (else null)
  BackwardFn backward;               ///< turns the outputs' adjoints into inputs' adjoints (accumulating)

  /// Number of outputs (1 for every primitive).
  std::size_t num_outputs() const { return more_outputs ? 1 + more_outputs->size() : 1; }
  /// Output k (0 is `output`).
  const Tensor& output_at(std::size_t k) const { return k == 0 ? output : (*more_outputs)[k - 1]; }
};

/// Which output of its entry `t` is (0 for a single-output entry, a leaf or a constant).
std::size_t output_index(const Tensor& t);

/// A tape: the entries recorded since it was last cleared, in recording order.
class Tape {
 public:
  /// Creates a tape and makes it the thread's current tape until it is destroyed.
  Tape();
  /// Clears the tape and restores the previous current tape (a detached tape restores nothing). A
  /// CurrentTape scope that names it stops making it current. Aborts the process, with a message,
  /// when the tape is still current on another thread (destroy a Tape on the thread that made it, or
  /// hand a make_detached() tape between threads) or when a sweep is walking it (a hook or backward
  /// function destroying the tape being swept).
  ~Tape();
  /// A tape that is no thread's current one until a CurrentTape scope makes it so, and that restores
  /// nothing when destroyed: one part of a computation recorded on another thread (a branch run
  /// beside the rest, autograd/detail/beside.hpp), owned by the entry that stands for it.
  static std::unique_ptr<Tape> make_detached();
  Tape(const Tape&) = delete;
  Tape& operator=(const Tape&) = delete;

  /// The thread's current tape (its default tape if no Tape scope is open).
  static Tape& current();

  /// Number of entries.
  std::size_t size() const { return m_nodes.size(); }
  /// Whether no entry is recorded.
  bool empty() const { return m_nodes.empty(); }
  /// Entry `i`, in recording order (unchecked: i < size()).
  const Node& operator[](std::size_t i) const { return m_nodes[i]; }
  /// Entry `i`, in recording order (unchecked: i < size()).
  Node& operator[](std::size_t i) { return m_nodes[i]; }
  /// All entries, in recording order.
  const std::deque<Node>& entries() const { return m_nodes; }

  /// What the last sweep with keep_adjoints saw on this tape (null if none since the last clear):
  /// the adjoint each entry received and what it sent, read by explain_tape() and to_dot().
  const SweepTrace* last_trace() const { return m_trace.get(); }
  /// Keeps `trace` as this tape's last_trace() until the next clear (the sweep calls it).
  void set_last_trace(std::shared_ptr<const SweepTrace> trace) { m_trace = std::move(trace); }

  /// Releases every entry and every intermediate value (those marked keep_on_clear become constants).
  /// Throws TapeError while a sweep walks this tape (from a backward function, a gradient-ready hook,
  /// a checkpoint's function, or a step-through ReverseSweep not yet done): its entries are in use.
  void clear();

  /// Appends an entry; used by record(). Returns its index.
  std::int64_t push(Node node);
  /// Releases the entries from `size` on, as clear() does, and drops them (a checkpoint's re-run,
  /// once swept). Their outputs are released, or become constants if marked keep_on_clear.
  void truncate(std::size_t size);

  /// A finite difference with respect to an intermediate value (gradcheck's search for the op that
  /// gets a gradient wrong): while set, entry `entry` recorded on this tape gets `delta` added to
  /// element `element` (row-major) of its output 0 as it is pushed, so everything computed after it
  /// sees the nudged value. The output must be float64 and not a view.
  struct OutputProbe {
    std::int64_t entry = -1;  ///< tape index of the entry whose output is nudged (−1: none)
    std::size_t element = 0;  ///< row-major index of the nudged element of its output 0
    double delta = 0;         ///< what is added to that element
  };
  /// Sets the probe (null: none). The probe must outlive its use.
  void set_output_probe(const OutputProbe* probe) { m_probe = probe; }

  /// The entries recorded from now on belong to time step `t` of a recurrent layer (−1: to none);
  /// run_sequence marks each step, and the teaching views label its entries "t=2". A mark with no
  /// entry recorded since the last one replaces it, so a tape that records nothing holds one mark.
  /// Each mark also drops the values recorded since the last one that nothing will read (drop_unread).
  void mark_step(std::int64_t t) {
    drop_unread();
    if (!m_steps.empty() && m_steps.back().first == m_nodes.size())
      m_steps.back().second = t;
    else if (!m_steps.empty() || t >= 0)
      m_steps.emplace_back(m_nodes.size(), t);
  }
  /// Frees the values of the entries recorded since the last call (and of their inputs) that no
  /// backward reads — each Primitive says what its backward reads — and that nothing outside the
  /// tape holds: a gate block once cut into slices, a sigmoid's input, the terms of a sum. Their
  /// entries, shapes and dtypes stay; reading such a value throws TapeError (value_dropped()).
  /// run_sequence calls it at every time step (through mark_step), Recur after each step, and a
  /// sweep that will not retain the tape over the whole tape (`whole_tape`) before it starts. The
  /// gradients are unchanged: only values no backward reads are freed. A tape holding less than 1 MiB
  /// of values frees nothing (the search would cost a small model more than it saves): the entries
  /// wait, and the first call past that size looks at them all.
  void drop_unread(bool whole_tape = false);
  /// Keeps every value on this tape from now on: drop_unread frees nothing, so the teaching views
  /// (print_tape, explain_backward, write_html) show the value of every entry, at the memory cost of
  /// all of them. For small tapes one looks at; training leaves it off.
  ///
  ///   Tape tape;
  ///   tape.keep_values();
  void keep_values(bool on = true) { m_keep_values = on; }
  /// Whether keep_values() is on for this tape.
  bool keeps_values() const { return m_keep_values; }
  /// The time step entry `i` was recorded in (mark_step), −1 if none.
  std::int64_t step_of(std::size_t i) const;

 private:
  friend class ReverseSweep;  // counts itself in m_sweeps while it walks the entries
  friend struct TapeStack;    // the thread's stack of current tapes (tape.cpp) counts itself in m_named
  struct RootTag {};
  explicit Tape(RootTag);
  void release_all();
  std::size_t m_sweeps = 0;  // sweeps walking this tape now: clear() refuses while any does
  std::vector<std::pair<std::size_t, std::int64_t>> m_steps;  // (first entry, time step), in order
  std::size_t m_drop_from = 0;  // drop_unread looks at the entries from here on
  std::size_t m_value_bytes = 0;  // bytes of the values recorded since the last clear (drop_unread's gate)
  bool m_keep_values = false;   // keep_values(): drop_unread frees nothing
  std::deque<Node> m_nodes;  // a deque: entries stay put while a create_graph sweep appends
  std::shared_ptr<const SweepTrace> m_trace;  // the side table of the last keep_adjoints sweep
  const OutputProbe* m_probe = nullptr;
  std::atomic<std::size_t> m_named{0};  // places in any thread's stack of current tapes that name this tape
};

/// RAII scope that makes an existing tape the thread's current one (a create_graph sweep records its
/// backward computation onto the tape it sweeps, whichever Tape scope the caller is in).
class CurrentTape {
 public:
  /// Makes `tape` the thread's current tape; the destructor restores the previous one. If the tape is
  /// destroyed first, the scope no longer makes it current (the one before it is, at once).
  explicit CurrentTape(Tape& tape);
  ~CurrentTape();
  CurrentTape(const CurrentTape&) = delete;
  CurrentTape& operator=(const CurrentTape&) = delete;

 private:
  std::size_t m_place;  // its place in the thread's stack of current tapes
};

/// Whether ops record onto the tape on this thread.
class GradMode {
 public:
  /// Whether ops record on this thread (on by default).
  static bool enabled();
  /// Turns recording on this thread on or off (the guards below restore it on scope exit).
  static void set_enabled(bool enabled);
};

/// RAII scope in which nothing is recorded (evaluation, optimizer updates).
class NoGradGuard {
 public:
  NoGradGuard() : m_previous(GradMode::enabled()) { GradMode::set_enabled(false); }
  ~NoGradGuard() { GradMode::set_enabled(m_previous); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool m_previous;
};

/// RAII scope that turns recording back on inside a no-grad scope.
class EnableGradGuard {
 public:
  EnableGradGuard() : m_previous(GradMode::enabled()) { GradMode::set_enabled(true); }
  ~EnableGradGuard() { GradMode::set_enabled(m_previous); }
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;

 private:
  bool m_previous;
};

/// What a backward function sees: the output's adjoint, the operands, and where to add results.
class BackwardContext {
 public:
  /// A gradient for part of an input: g belongs at [start:stop:step] along `axis`.
  struct Region {
    std::size_t input;  ///< which operand the gradient is for
    Tensor g;           ///< the gradient of that part, shaped like the slice
    int axis;           ///< the axis the region is sliced along (negative counts from the end)
    std::size_t start;  ///< first index of the region along `axis`
    std::size_t stop;   ///< one past its last index
    std::size_t step;   ///< stride between its indices
  };

  /// A gradient for a whole input that is a matrix product: op(a)·op(b), op by transpose flag.
  struct Product {
    std::size_t input;  ///< which operand the gradient is for
    Tensor a;           ///< the left factor
    Tensor b;           ///< the right factor
    bool ta;            ///< use aᵀ
    bool tb;            ///< use bᵀ
  };
  /// A sub-computation to run again under recording (checkpoint, autograd/checkpoint.hpp): it
  /// returns one tensor per output of the entry, recorded onto the swept tape.
  using Rerun = std::function<std::vector<Tensor>()>;
  /// Computes an entry's adjoints for its inputs, one per input (undefined: nothing for that input),
  /// possibly on another thread (BackwardContext::beside).
  using Beside = std::function<std::vector<Tensor>()>;
  /// What a backward function handed to the sweep to add in place (regions, products), or to run.
  struct Deferred {
    std::vector<Region> regions;    ///< slice gradients to add into the inputs' adjoints
    std::vector<Product> products;  ///< matrix products to add into the inputs' adjoints
    Rerun rerun;                    ///< a sub-computation to re-run and sweep (null: none)
    Beside beside;                  ///< the inputs' adjoints, to compute beside the sweep (null: none)
    bool retain = false;            ///< the sweep keeps the tape (set by the sweep, read by retains())
    /// Empties it for the next entry.
    void clear() {
      regions.clear();
      products.clear();
      if (rerun) rerun = nullptr;
      if (beside) beside = nullptr;
    }
  };

  /// For entry `node` with adjoint `grad_out`: accumulate() adds into `grads` (one slot per input), the
  /// in-place sends go to `deferred` for the sweep to run. Built by the sweep (ReverseSweep).
  BackwardContext(const Node& node, const Tensor& grad_out, std::vector<Tensor>& grads, Deferred& deferred)
      : m_node(node), m_grad_outs(&grad_out), m_grads(grads), m_deferred(deferred) {}
  /// For a multi-output entry: `grad_outs` holds one adjoint per output (node.num_outputs() of them).
  BackwardContext(const Node& node, const Tensor* grad_outs, std::vector<Tensor>& grads, Deferred& deferred)
      : m_node(node), m_grad_outs(grad_outs), m_grads(grads), m_deferred(deferred) {}

  /// The adjoint of the output (dy), same shape as the output; of output 0 for a multi-output entry.
  const Tensor& grad_out() const { return m_grad_outs[0]; }
  /// The adjoint of output k (zeros of its shape when nothing downstream used that output); k past
  /// the outputs is a TapeError naming the op, as is i past the inputs below.
  const Tensor& grad_out(std::size_t k) const {
    if (k >= m_node.num_outputs()) [[unlikely]] throw_no_such("grad_out", false, k);
    return m_grad_outs[k];
  }
  /// Number of outputs of the entry.
  std::size_t num_outputs() const { return m_node.num_outputs(); }
  /// Output k as produced.
  const Tensor& output(std::size_t k) const {
    if (k >= m_node.num_outputs()) [[unlikely]] throw_no_such("output", false, k);
    return m_node.output_at(k);
  }
  /// Operand i as recorded.
  const Tensor& input(std::size_t i) const {
    if (i >= m_node.inputs.size()) [[unlikely]] throw_no_such("input", true, i);
    return m_node.inputs[i];
  }
  /// Number of operands of the entry.
  std::size_t num_inputs() const { return m_node.inputs.size(); }
  /// The value the op produced (y).
  const Tensor& output() const { return m_node.output; }
  /// Whether operand i wants a gradient (skip computing it otherwise).
  bool needs_grad(std::size_t i) const;
  /// d input_i += g. g must have operand i's shape and dtype (checked, naming the op).
  void accumulate(std::size_t i, const Tensor& g);
  /// d input_i[…, start:stop:step, …] += g along `axis` — the same as accumulate(i, unslice(g, …)),
  /// but the sweep adds g into that region of the adjoint in place instead of building a zero tensor
  /// of the whole input (so cutting a sequence into T steps costs O(T), not O(T²)). Under
  /// create_graph it records unslice, so it stays differentiable.
  void accumulate_slice(std::size_t i, const Tensor& g, int axis, std::size_t start, std::size_t stop,
                        std::size_t step);
  /// d input_i += op(a)·op(b) (op(X) = X or Xᵀ by flag; 2-D, or batched 3-D) — the same as
  /// accumulate(i, matmul(a, b, ta, tb)), but the sweep runs the product straight into the adjoint
  /// when it owns it (GEMM with β = 1: no temporary, no extra pass). Under create_graph it records
  /// matmul, so it stays differentiable.
  void accumulate_matmul(std::size_t i, const Tensor& a, const Tensor& b, bool ta = false, bool tb = false);
  /// Instead of sending adjoints itself, the entry has the sweep run `fn` — which records onto the
  /// swept tape, with grad mode on, and returns one tensor per output of the entry, each of that
  /// output's shape and dtype — then seed each returned tensor with that output's adjoint and sweep
  /// the entries `fn` recorded before going on below this entry. So the inputs get their adjoints
  /// from the re-run entries, one contribution at a time, in the order an unrecomputed sweep sends
  /// them (checkpoint, autograd/checkpoint.hpp). Without retain, the re-run entries are dropped once
  /// swept.
  void rerun(Rerun fn) { m_deferred.rerun = std::move(fn); }
  /// Instead of sending adjoints itself, the entry has the sweep call `fn`, which returns one adjoint
  /// per input of the entry (undefined for an input it sends nothing), each of that input's shape and
  /// dtype. The sweep may run `fn` on another thread while it goes on with the entries above the
  /// latest entry that produced one of the inputs, and adds fn's adjoints when it gets there — so fn
  /// must not touch this tape or its values' adjoints, only what it owns (a part's own tape,
  /// autograd/detail/beside.hpp). It runs on the calling thread, its adjoints added at once, under
  /// create_graph, inside a checkpoint's re-run and in a step-through sweep (not in place); on the
  /// calling thread too, after the entries above, with one thread, inside another entry's fn, or when
  /// no worker takes it. Gradient-ready hooks wait for it.
  void beside(Beside fn) { m_deferred.beside = std::move(fn); }
  /// Whether the sweep keeps the tape afterwards (SweepOptions::retain): a sweep an entry runs over
  /// a tape of its own keeps that one too, so a second backward finds it.
  bool retains() const { return m_deferred.retain; }
  /// The entry being swept.
  const Node& node() const { return m_node; }

 private:
  /// TapeError: the backward of m_node asked `what` for its input (else output) k, which the entry
  /// does not have (out of line and cold: the accessors above stay one compare).
  [[noreturn, gnu::cold, gnu::noinline]] void throw_no_such(const char* what, bool input, std::size_t k) const;
  const Node& m_node;
  const Tensor* m_grad_outs;  // one per output
  std::vector<Tensor>& m_grads;
  Deferred& m_deferred;
};

/// Records `output = op(inputs)` on the current tape if grad mode is on and any input requires a
/// gradient; otherwise returns `output` untouched as a constant. This is how every primitive —
/// built-in or user-defined — joins the tape. `op` and `rule` must outlive the tape (string
/// literals, or intern()ed).
Tensor record(const char* op, std::initializer_list<Tensor> inputs, Tensor output, const char* rule,
              BackwardFn backward);
Tensor record(const char* op, std::vector<Tensor> inputs, Tensor output, const char* rule, BackwardFn backward);
/// The same for a built-in primitive: its name and rule come from its one Primitive constant.
Tensor record(const Primitive& prim, std::initializer_list<Tensor> inputs, Tensor output, BackwardFn backward);
Tensor record(const Primitive& prim, std::vector<Tensor> inputs, Tensor output, BackwardFn backward);
/// Records one entry with several outputs, `outputs = op(inputs)` (at least one; each a fresh
/// tensor). The backward is called once per sweep with grad_out(k) for every output. Returns the
/// outputs, each now knowing its (entry, output index); untouched if nothing was recorded.
std::vector<Tensor> record_multi(const char* op, std::vector<Tensor> inputs, std::vector<Tensor> outputs,
                                 const char* rule, BackwardFn backward);

/// A stable copy of `s` that lives as long as the program (for names of custom ops).
const char* intern(const std::string& s);

/// A user-defined primitive: `forward` runs with recording off and returns the output; `backward`
/// accumulates into the context like a built-in op. Written with rewind's differentiable ops, the
/// backward also supports double backward.
Tensor custom_op(const std::string& name, std::vector<Tensor> inputs,
                 const std::function<Tensor(const std::vector<Tensor>&)>& forward, BackwardFn backward,
                 const std::string& rule = "");

/// A user-defined primitive with several outputs, recorded as ONE entry (a checkpointed RNN chunk
/// returning its outputs and its final state): `forward` returns the outputs; `backward` reads
/// grad_out(k) for each (zeros for an output nothing used) and is called once per sweep.
std::vector<Tensor> custom_op_multi(const std::string& name, std::vector<Tensor> inputs,
                                    const std::function<std::vector<Tensor>(const std::vector<Tensor>&)>& forward,
                                    BackwardFn backward, const std::string& rule = "");

namespace detail {
/// Tape::drop_unread frees nothing on a tape holding fewer bytes of values than this (1 MiB by
/// default). Sets it — tests set 0 to see values dropped at small sizes — and returns the previous value.
std::size_t set_drop_min_bytes(std::size_t bytes);
}  // namespace detail

/// The same from a struct with `static constexpr const char* name`, `static Tensor
/// forward(const std::vector<Tensor>&)` (or `std::vector<Tensor>` for several outputs, recorded by
/// custom_op_multi) and `static void backward(BackwardContext&)` (optionally
/// `static constexpr const char* rule`).
template <class Op>
auto apply(std::vector<Tensor> inputs) {
  const char* rule = "";
  if constexpr (requires { Op::rule; }) rule = Op::rule;
  if constexpr (std::is_same_v<decltype(Op::forward(inputs)), std::vector<Tensor>>)
    return custom_op_multi(Op::name, std::move(inputs), &Op::forward, &Op::backward, rule);
  else
    return custom_op(Op::name, std::move(inputs), &Op::forward, &Op::backward, rule);
}

}  // namespace rwd
