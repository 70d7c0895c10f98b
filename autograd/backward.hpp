// rewind/autograd/backward.hpp — the reverse sweep: backward(), grad(), a step-through sweep, the
// side table the explain views read, and the gradient-ready hook.
//
// Gradient-ready hooks. A leaf's last contribution comes from the EARLIEST entry that uses it (the
// sweep runs last entry to first). With a hook registered, a sweep that accumulates into .grad()
// (backward(), or a ReverseSweep without targets) first stamps each leaf on the tape with that
// first consumer, and calls the hook for the leaf as soon as the sweep has passed it:
//
//   auto ready = on_grad_ready([&](const Tensor& p) { bucket_of(p).add(p.grad()); });  // RAII
//   backward(loss);  // each parameter's hook runs once, its .grad() final, while the sweep goes on
//
// What a hook may count on: it runs exactly once per leaf per sweep (retain and create_graph
// included), after every contribution to that leaf's .grad() — plain adds, GEMMs with β = 1 into
// .grad(), slice regions added in place, a .grad() replaced by a new tensor alike — and no entry
// still to be swept reads the leaf, so it may all-reduce .grad(), batch it into a GEMM, or update
// the leaf in place (an optimizer in the backward; with retain, a second backward would see the
// updated value). It does not run for a leaf the sweep sends nothing to (used only by entries no
// adjoint reached), nor in grad(), which leaves .grad() alone. A leaf that is itself the root fires
// at the end. Hooks run in registration order, on the thread that runs the sweep; registrations are
// per thread. With none registered the sweep pays one branch per entry.
//
// Batched weight gradients. A weight used by many matmul/affine entries (W_hh at every step of an
// unrolled RNN, a head applied step by step) gets one product per use, dW += dyₜ·xₜᵀ, each with a
// small inner dimension (the batch). backward() gathers those products instead of running them —
// copying the output adjoint and the other operand into two panels, side by side — and when the
// leaf's gradient must be final (before any gradient-ready hook runs, and at the end of the sweep)
// runs them as ONE product: dW += [dy₀ dy₁ …]·[x₀ x₁ …]ᵀ (kernels::ProductPanel). The panels are
// bounded (2 MiB a group; full, they run and start again), so a long unroll's memory does not grow
// with it. Gathered are 2-D products into a leaf's .grad() with an inner dimension under 256 and more
// than 512 multiply-adds (kernels::kTinyProduct), while the BLAS runs on more than one thread; a
// longer product already runs near BLAS's peak, a tiny one is a plain loop, and on one thread a short
// product runs at full speed too (backward.cpp says what was measured). Only backward()'s in-place
// sweep gathers: grad(), a step-through, the explain view and create_graph (which records its
// products) run each product where it is. last_sweep_stats() says what the latest sweep gathered.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include "tape.hpp"

namespace rwd {

namespace detail {
struct TensorImpl;
/// A leaf's gradient in a sweep over a part's own tape: where it is added (it may start as zeros the
/// caller made, so the sweep adds in place instead of allocating), and whether the sweep reached it.
struct LeafGrad {
  Tensor grad;
  bool reached = false;
};
/// Where a sweep over a part's own tape adds its leaves' gradients instead of their .grad(): by leaf.
using LeafGrads = std::unordered_map<const void*, LeafGrad>;
/// backward() from `roots` seeded with `seeds` (one each), except that each leaf's gradient is added
/// into leaf_grads[its impl] instead of its .grad(), and no gradient-ready hook fires (the entry that
/// stands for the part on the outer tape sends them on: autograd/detail/beside.hpp). With `retain`
/// the tape is kept, as the outer sweep keeps its own.
void sweep_into(const std::vector<Tensor>& roots, const std::vector<Tensor>& seeds, bool retain, LeafGrads& leaf_grads);
}  // namespace detail
namespace kernels {
class ProductPanel;
}

/// Options of a reverse sweep.
struct SweepOptions {
  bool retain = false;         ///< keep the tape after the sweep (to call backward again)
  bool create_graph = false;   ///< record the backward computation too (implies retain): double backward
  bool keep_adjoints = false;  ///< keep each entry's adjoints in a SweepTrace (explain view, DOT graph)
  bool in_place = false;       ///< matmul and slice gradients go straight into the adjoints they add to
                               ///< (fast, but adjoints_out() then omits them); backward() and grad()
                               ///< always sweep this way, a step-through by default shows every send
};

/// What a sweep with keep_adjoints saw at one entry.
struct EntryTrace {
  std::vector<Tensor> adjoints;  ///< the adjoint each output received (dy), by output; undefined for an
                                 ///< output nothing used; empty when the sweep never reached the entry
  std::vector<Tensor> sent;      ///< what it sent to each input (undefined where it sent nothing)
  std::size_t rerun_first = 0;   ///< a checkpoint: the entries [rerun_first, rerun_end) it re-ran,
  std::size_t rerun_end = 0;     ///< swept in its place (empty otherwise)
  /// Whether the sweep reached this entry (it then has its adjoints).
  bool reached() const { return !adjoints.empty(); }
};

/// The side table of a keep_adjoints sweep: one EntryTrace per tape index. The sweep owns it and
/// leaves it with the tape (Tape::last_trace()) until the tape is cleared; tape entries never hold it.
struct SweepTrace {
  std::vector<EntryTrace> entries;  ///< by tape index; an entry the sweep did not reach has no adjoints
  /// Entry i's trace, or null when the sweep did not reach it.
  const EntryTrace* at(std::size_t i) const {
    return i < entries.size() && entries[i].reached() ? &entries[i] : nullptr;
  }
};

/// A hook told that a leaf's gradient is final in the running sweep (see the top of this file).
using GradReadyFn = std::function<void(const Tensor& leaf)>;

/// A gradient-ready hook registered on this thread for as long as the object lives (RAII).
class GradReadyHook {
 public:
  /// Registers `fn` on this thread (ValueError when it is empty); the destructor unregisters it.
  explicit GradReadyHook(GradReadyFn fn);
  /// Unregisters the hook from the thread that registered it — also when run on another thread, or
  /// after that thread ended. Destroyed on another thread while a sweep there is calling it, it waits
  /// for that call to return; after it, the hook is never called again.
  ~GradReadyHook();
  GradReadyHook(const GradReadyHook&) = delete;
  GradReadyHook& operator=(const GradReadyHook&) = delete;

  struct Entry;  ///< the function and its state, shared with a sweep calling it (backward.cpp)
  struct List;   ///< one thread's hooks (backward.cpp)

 private:
  std::shared_ptr<Entry> m_entry;
  std::shared_ptr<List> m_list;  // the registering thread's: kept alive past that thread's end
};

/// What the latest sweep on this thread did with weight-gradient products (tests, profiling).
struct SweepStats {
  std::size_t products_deferred = 0;  ///< products into a leaf's .grad() kept to be summed later
  std::size_t batched_gemms = 0;      ///< GEMMs that summed them (fewer than products_deferred when batched)
};

/// The SweepStats of the latest sweep on this thread (zeros before any).
SweepStats last_sweep_stats();

/// Registers `fn` to run when each leaf's gradient is final in every backward sweep on this thread,
/// until the returned registration is destroyed.
[[nodiscard]] GradReadyHook on_grad_ready(GradReadyFn fn);

/// The reverse sweep as an object that can be advanced one entry at a time (teaching, debugging).
/// backward() and grad() are this class run to completion.
///
///   ReverseSweep sweep(loss);
///   while (sweep.step()) std::cout << sweep.current() << ": " << sweep.adjoint_in() << "\n";
class ReverseSweep {
 public:
  /// A sweep from `root` seeded with `seed` (default: 1 for a one-element root).
  explicit ReverseSweep(const Tensor& root, const Tensor& seed = Tensor(), SweepOptions options = {});
  /// A sweep from several roots, each with its seed. With `targets`, gradients of those tensors are
  /// collected (see result()) and leaves' .grad() is left alone — that is grad(); without, leaves'
  /// gradients accumulate into .grad() — that is backward().
  ReverseSweep(const std::vector<Tensor>& roots, const std::vector<Tensor>& seeds, SweepOptions options,
               const std::vector<Tensor>* targets);
  ~ReverseSweep();
  ReverseSweep(const ReverseSweep&) = delete;
  ReverseSweep& operator=(const ReverseSweep&) = delete;

  /// Processes the next entry that has an adjoint. Returns false when nothing is left (the sweep is
  /// then finished: the tape is cleared unless retained).
  bool step();
  /// Runs to the end.
  void run();
  /// Whether the sweep has finished (step() then returns false).
  bool done() const { return m_done; }

  /// Tape index of the entry processed by the last step() (-1 before the first).
  std::int64_t current() const { return m_current; }
  /// The adjoint that entry received (dy; of its output 0 for a multi-output entry).
  const Tensor& adjoint_in() const { return m_adjoint_in; }
  /// The adjoints of each of that entry's outputs (undefined for an output nothing used).
  std::vector<Tensor> adjoints_in() const;
  /// What it sent to each of its inputs (undefined where an input takes no gradient).
  const std::vector<Tensor>& adjoints_out() const { return m_adjoints_out; }
  /// The adjoint accumulated so far for tape entry i (undefined if none yet or already consumed).
  Tensor pending_adjoint(std::int64_t i) const;
  /// The tape being swept; throws TapeError when the root was a leaf (there is no tape to sweep).
  Tape& tape() const;

  /// With keep_adjoints: what each entry received and sent so far (null otherwise).
  const SweepTrace* trace() const { return m_trace.get(); }

  /// After run(): the gradients of the targets, in order (undefined where a target was not reached).
  std::vector<Tensor> result() const;

 private:
  friend void detail::sweep_into(const std::vector<Tensor>&, const std::vector<Tensor>&, bool, detail::LeafGrads&);
  ReverseSweep(const std::vector<Tensor>& roots, const std::vector<Tensor>& seeds, SweepOptions options,
               const std::vector<Tensor>* targets, detail::LeafGrads* leaf_grads);
  Tensor& leaf_grad(detail::TensorImpl& leaf);
  bool advance(std::int64_t above);
  void process(std::size_t i);
  [[gnu::noinline]] void run_handed(std::size_t i);
  void run_beside(std::size_t i, const BackwardContext::Beside& fn);
  void add_adjoint(const Tensor& input, const Tensor& g);
  void add_region(const Tensor& input, const BackwardContext::Region& r, Tensor& sent);
  void add_product(const Tensor& input, const BackwardContext::Product& q, Tensor& sent);
  bool defer_product(const Tensor& input, const BackwardContext::Product& q);
  void flush_products();
  Tensor* writable_slot(const Tensor& input);
  bool reached(std::int64_t i) const;
  std::vector<Tensor> adjoints_in_of(const Tensor& dy) const;
  void stamp_leaves(std::int64_t last);
  void mark_received(const detail::TensorImpl* leaf);
  void fire_ready(std::int64_t passed);
  void finish();
  void begin_rerun(std::size_t i, const BackwardContext::Rerun& rerun);
  void end_rerun();

  /// A re-run being swept: its entries start at `first`; `entry` asked for it.
  struct Rerun {
    std::size_t first, entry;
  };
  std::vector<Rerun> m_reruns;  // nested checkpoints: innermost last

  /// A leaf stamped with its first consumer, for the gradient-ready hooks.
  struct ReadyLeaf {
    std::int64_t first;  // earliest entry that uses it (-1: the root itself)
    Tensor leaf;
    bool received = false;  // the sweep sent it something
  };

  Tape* m_tape = nullptr;
  SweepOptions m_options;
  std::vector<Tensor> m_adjoints;  // by tape index
  std::vector<bool> m_owned;       // m_adjoints[i] is ours to add into in place
  std::int64_t m_next = -1;        // next index to look at
  std::int64_t m_current = -1;
  std::unordered_map<std::size_t, std::vector<Tensor>> m_more_adjoints;  // outputs 1… of multi-output entries
  Tensor m_adjoint_in;
  std::vector<Tensor> m_more_in;  // the current entry's adjoints of outputs 1… (multi-output entries)
  std::vector<Tensor> m_adjoints_out;
  BackwardContext::Deferred m_deferred;  // slice and product gradients of the current step
  bool m_done = false;
  const std::vector<Tensor>* m_targets = nullptr;
  std::unordered_map<const void*, std::size_t> m_target_index;
  std::vector<Tensor> m_target_grads;
  bool m_collect_only = false;
  std::vector<Tensor> m_roots;  // kept readable after the clear: loss.item() after backward() works
  std::shared_ptr<SweepTrace> m_trace;  // keep_adjoints: the side table
  bool m_hooks = false;                 // gradient-ready hooks registered when the sweep began
  std::vector<ReadyLeaf> m_ready;       // by first consumer, latest first
  std::size_t m_ready_next = 0;         // m_ready[m_ready_next…] have not fired yet
  std::unordered_map<const void*, std::size_t> m_ready_index;

  /// Products for one leaf's .grad() with one pair of transpose flags, gathered to run as one GEMM.
  struct ProductGroup {
    Tensor leaf;
    bool ta = false, tb = false;
    std::unique_ptr<kernels::ProductPanel> panel;
  };
  void flush_group(ProductGroup& g);
  bool m_defer = false;               // backward()'s in-place sweep into .grad(): products are batched
  int m_gather_threads = -1;          // the BLAS's threads, read at the first product that could be gathered
  std::vector<ProductGroup> m_groups;  // few (one per weight and flags): searched in order

  void leave_tape();
  bool m_walking = false;  // counted in m_tape->m_sweeps (Tape::clear refuses meanwhile)
  detail::LeafGrads* m_leaf_grads = nullptr;  // sweep_into: leaves' gradients go here, not to .grad()
  bool m_hold_fire = false;  // an entry's beside fn runs: gradient-ready hooks wait (run_beside)
};

/// Reverse sweep from `root`: adds d root/d leaf into every reachable leaf's .grad().
/// A non-scalar root needs a `seed` of its shape. Clears the tape afterwards unless `retain`;
/// with `create_graph` the gradients carry history (double backward).
void backward(const Tensor& root, const Tensor& seed = Tensor(), SweepOptions options = {});

/// Gradients of `outputs` (seeded with `seeds`, default 1 each) with respect to `inputs`, returned
/// rather than accumulated into .grad(). Inputs may be leaves or intermediates. Undefined where
/// an input is unreachable, unless `allow_unused` is false (then a TapeError names it).
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& seeds = {}, SweepOptions options = {},
                         bool allow_unused = false);

}  // namespace rwd
