// rewind/autograd/inspect.hpp — the tape as a teaching tool: print it, explain a reverse sweep,
// step through one, draw it with Graphviz, and count what it holds.
//
//   Tensor loss = …;                          // recorded on the current tape
//   std::cout << print_tape();                // one line per entry: op, inputs, shape, values
//   std::cout << explain_backward(loss);      // the sweep, entry by entry: dy, rule, what was sent
//   std::ofstream("tape.dot") << to_dot();    // dot -Tsvg tape.dot > tape.svg
//
//   ReverseSweep sweep(loss);                 // or one entry at a time
//   while (sweep.step()) std::cout << describe_step(sweep);
//
// Inputs are named `#k` for tape entry k, by their name() for named leaves, `leaf (2, 1)` for an
// unnamed leaf that takes a gradient and `const (2, 1)` (or `const 0.5` for one element) for an
// unnamed constant. Values print as themselves up to four elements, else as mean/min/max, all with
// %.4g, so the text is deterministic enough for golden tests.
#pragma once

#include <cstddef>
#include <iosfwd>
#include <string>
#include <vector>

#include "backward.hpp"
#include "tape.hpp"

namespace rwd {

/// One line per tape entry: index, op, inputs, output shape and a value summary, column-aligned.
std::string print_tape(const Tape& tape = Tape::current());

/// Runs the reverse sweep from `root` (retaining the tape, keeping adjoints) and returns
/// explain_tape() of the swept tape. It IS a backward: the leaves' .grad() accumulates as with
/// backward() (so to_dot and the step-through show it filling up) — call zero_grad() before a
/// backward() that follows it, or its gradients are counted twice.
std::string explain_backward(const Tensor& root, const Tensor& seed = Tensor());

/// For each entry from last to first: the adjoint it received, its rule, the adjoints it sent to
/// each input; then the gradient that reached each leaf. Needs a tape swept with keep_adjoints.
std::string explain_tape(const Tape& tape = Tape::current());

/// The entry processed by the sweep's last step(): index, op, adjoint in, rule, adjoints out.
std::string describe_step(const ReverseSweep& sweep);

/// Entry i's backward rule with its own operands in place of the rule's symbols, as the explain
/// views show it: matmul(W_h, #4)'s "dA += dC·Bᵀ; dB += Aᵀ·dC" reads "dW_h += dy·#4ᵀ; d#4 += W_hᵀ·dy".
/// The output's adjoint is always dy and the output itself #i; a clause for an input that takes no
/// gradient is left out. A rule whose symbols do not match the inputs one to one (concat's dxᵢ) is
/// returned as recorded; "(none recorded)" when there is none.
std::string rule_with_operands(const Tape& tape, std::size_t i);

/// A value as the explain views show it: up to `full` elements in full, nested by their shape
/// ("[[0.1, -0.2], [0.4, 0.3]]" for (2, 2), "1" for 0-d), else "(3, 4) mean=… min=… max=…"; %.4g.
std::string shaped_value(const Tensor& t, std::size_t full = 4);

/// Entry i's first line in the explain views: "#4 t=0 tanh(#3) → (2, 1)".
std::string entry_headline(const Tape& tape, std::size_t i);

/// How the views name a tensor: "#4" (or "#4:h1") for an entry, a leaf's name, "leaf (2, 1)",
/// "const 0.5" or "const (2, 1)".
std::string operand_label(const Tensor& x);

/// The tape as a Graphviz digraph: leaves and entries as nodes (op, shape, values, and the adjoint
/// when kept), an edge from each input to the entry that used it (labelled with the adjoint sent
/// back along it when kept).
std::string to_dot(const Tape& tape = Tape::current());

/// How to_dot lays the graph out.
struct DotOptions {
  bool top_to_bottom = false;  ///< rankdir=TB (a long unroll reads down the page) instead of LR
  bool cluster_steps = true;   ///< a box per time step around a recurrent layer's entries (Tape::step_of)
};
/// to_dot with options: `to_dot(tape, {.top_to_bottom = true})`.
std::string to_dot(const Tape& tape, const DotOptions& options);

/// How much of the gradient reaches each step of a recurrence: ‖∂loss/∂h_t‖ (the 2-norm over all of
/// h_t's elements) for each of `steps` — e.g. RecurrentRun::outputs, or the states of a hand-written
/// loop — through every path, the later steps included. A tanh RNN's values shrink geometrically
/// towards t = 0 (vanishing gradients); an LSTM's cell state carries them further. 0 for a step the
/// loss does not depend on. The tape is kept (retain), so the caller may still backward().
std::vector<double> gradient_flow(const Tensor& loss, const std::vector<Tensor>& steps);

/// Entries and value bytes recorded by one op.
struct OpStats {
  std::string op;         ///< the op's name, as recorded on its entries
  std::size_t count = 0;  ///< how many entries it recorded
  std::size_t bytes = 0;  ///< Σ numel × dtype_size over the outputs (a value already dropped counts 0)
};

/// What a tape holds: entries and the bytes of their output values, per op.
struct TapeStats {
  std::size_t entries = 0;      ///< entries on the tape
  std::size_t bytes = 0;        ///< bytes of their output values (values already dropped count 0)
  std::vector<OpStats> per_op;  ///< most bytes first, then by op name
  /// A small table: totals, then one row per op.
  std::string str() const;
};

/// Counts the entries of `tape` and the bytes of their output values.
TapeStats tape_stats(const Tape& tape = Tape::current());

/// Writes print_tape(tape), so that `std::cout << Tape::current()` works.
std::ostream& operator<<(std::ostream& os, const Tape& tape);
/// Writes stats.str().
std::ostream& operator<<(std::ostream& os, const TapeStats& stats);

}  // namespace rwd
