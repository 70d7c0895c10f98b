// rewind/autograd/backward.hpp — the reverse sweep: backward(), grad(), and a step-through sweep.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "tape.hpp"

namespace rwd {

/// Options of a reverse sweep.
struct SweepOptions {
  bool retain = false;         // keep the tape after the sweep (to call backward again)
  bool create_graph = false;   // record the backward computation too (implies retain): double backward
  bool keep_adjoints = false;  // leave each entry's adjoint in Node::adjoint (explain view, DOT graph)
  bool in_place = false;       // matmul and slice gradients go straight into the adjoints they add to
                               // (fast, but adjoints_out() then omits them); backward() and grad()
                               // always sweep this way, a step-through by default shows every send
};

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
  bool done() const { return m_done; }

  /// Tape index of the entry processed by the last step() (-1 before the first).
  std::int64_t current() const { return m_current; }
  /// The adjoint that entry received (dy).
  const Tensor& adjoint_in() const { return m_adjoint_in; }
  /// What it sent to each of its inputs (undefined where an input takes no gradient).
  const std::vector<Tensor>& adjoints_out() const { return m_adjoints_out; }
  /// The adjoint accumulated so far for tape entry i (undefined if none yet or already consumed).
  Tensor pending_adjoint(std::int64_t i) const;
  /// The tape being swept; throws TapeError when the root was a leaf (there is no tape to sweep).
  Tape& tape() const;

  /// After run(): the gradients of the targets, in order (undefined where a target was not reached).
  std::vector<Tensor> result() const;

 private:
  void add_adjoint(const Tensor& input, const Tensor& g);
  void add_region(const Tensor& input, const BackwardContext::Region& r, Tensor& sent);
  void add_product(const Tensor& input, const BackwardContext::Product& q, Tensor& sent);
  Tensor* writable_slot(const Tensor& input);
  void finish();

  Tape* m_tape = nullptr;
  SweepOptions m_options;
  std::vector<Tensor> m_adjoints;  // by tape index
  std::vector<bool> m_owned;       // m_adjoints[i] is ours to add into in place
  std::int64_t m_next = -1;        // next index to look at
  std::int64_t m_current = -1;
  Tensor m_adjoint_in;
  std::vector<Tensor> m_adjoints_out;
  BackwardContext::Deferred m_deferred;  // slice and product gradients of the current step
  bool m_done = false;
  const std::vector<Tensor>* m_targets = nullptr;
  std::unordered_map<const void*, std::size_t> m_target_index;
  std::vector<Tensor> m_target_grads;
  bool m_collect_only = false;
  std::vector<Tensor> m_roots;  // kept readable after the clear: loss.item() after backward() works
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
