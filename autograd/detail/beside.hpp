// rewind/autograd/detail/beside.hpp — two independent parts of a computation at once, forward and
// backward (library-internal: nn/recurrent.cpp runs a bidirectional layer's two directions with it).
//
//   auto [fwd, rev] = detail::run_beside(a, inputs, b, inputs, "reverse direction");
//
// a(inputs) runs on the calling thread and records onto the current tape, as if called directly. At
// the same time b(inputs) runs on a pool worker (kernels::run_two), recording onto a tape of its own
// over stand-ins for its inputs (views, no copy, taking a gradient where the input does — as
// checkpoint's, autograd/checkpoint.hpp). When both are done, b's tape joins the current one as ONE
// entry, `name`: its inputs are b's inputs and the parameters b read, its outputs copies of the values
// b recorded and returned.
//
//        current tape:  … #k x  │ #k+1 … #m  a's entries │ #m+1 name(x, W_r) → (y_r…) │ …
//        b's own tape:          │ #0 … #n  b's entries, over a stand-in for x          │
//
// When the sweep reaches that entry, the entry hands it a function (BackwardContext::beside) that
// sweeps b's tape — its leaves' gradients going to a side table, not to .grad() — and returns the
// adjoints of the entry's inputs. The sweep runs it on a worker while it goes on with a's entries on
// the calling thread, and adds the adjoints before it reaches x's producer. Loops inside either part
// run on its thread alone (one loop at a time on the pool), which is why this pays only when the pool
// has two threads (beside_pays).
//
// Under create_graph the entry re-runs b on the swept tape instead, as a checkpoint does, so double
// backward sees every entry. b must not read a tensor with history other than through its inputs (it
// records on a tape of its own: TapeError), nor draw from a Generator that a also draws from (they run
// at once: TapeError). A draw from the default generator must be one from the calling thread's: if b
// drew random numbers on the worker, b runs again on the calling thread, from the generators' states
// before its first draws (so they come in the order of a sequential run).
//
// Buffers. A tensor made on one thread and freed on another moves a buffer between the two threads'
// caches (core/memory.hpp); steady traffic one way would keep one cache sending the other buffers
// step after step. So what crosses is made and freed on the same side: the entry's outputs are copies
// made on the calling thread (b's own values stay b's thread's, freed there when its tape is swept);
// the gradients b's sweep returns start as zeros made on the calling thread, which b's sweep adds into
// in place; the seeds stay held by the calling thread's sweep until it has added b's adjoints.
// (bilstm_medium at 2 threads: 107.7 MiB peak against 99.6 with the directions in turn, flat over
// 100 steps; with the outputs as views and the gradients made on b's thread it grew 4 MB a step.)
//
// Bits: a's entries and b's are those a sequential run records, but the adjoints b's part sends to
// inputs that both parts read (x above) land after a's instead of interleaved with them, so gradients
// may differ from a sequential run's in the last bits (float addition in another order); and each part
// runs inside the pool, where a product large enough to split across threads in a sequential run runs
// whole (kernels/gemm.hpp), so outputs may too. From run to run, whichever thread ran b, and whether
// or not another thread held the pool (then a and b run in turn, inside it all the same), they are
// the same.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "../tape.hpp"

namespace rwd::detail {

/// One part: outputs from inputs.
using BranchFn = std::function<std::vector<Tensor>(const std::vector<Tensor>& inputs)>;

/// Runs a(a_inputs) here and b(b_inputs) beside it (see the top of this file); returns their outputs.
/// b and what it closes over must live until the backward (the entry runs b again under create_graph).
std::pair<std::vector<Tensor>, std::vector<Tensor>> run_beside(const BranchFn& a, const std::vector<Tensor>& a_inputs,
                                                               const BranchFn& b, const std::vector<Tensor>& b_inputs,
                                                               const std::string& name);

/// Whether two parts run beside each other beat each split across every thread: with 2 threads
/// (measured: beside.cpp), unless turned off by set_beside or by REWIND_NO_BESIDE=1 at start.
bool beside_pays();
/// Turns running beside on or off (on by default) and returns the previous setting — for the tests
/// and the benchmark, which compare the two.
bool set_beside(bool on);

}  // namespace rwd::detail
