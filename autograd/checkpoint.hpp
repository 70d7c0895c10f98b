// rewind/autograd/checkpoint.hpp — gradient checkpointing: recompute instead of store.
//
// The tape keeps every intermediate value until the sweep, so a T-step unroll holds T steps of them.
// checkpoint(fn, inputs) runs fn and records ONE entry for it, keeping only its inputs and outputs;
// the intermediates inside are dropped at once. When the reverse sweep reaches that entry, it runs fn
// again — now recording, onto the swept tape, on the same input tensors — and sweeps those entries in
// the entry's place before going on below it (BackwardContext::rerun, autograd/tape.hpp):
//
//   forward:   … #7 checkpoint(h, c, x₀…x₉; W) → (y₀…y₉, h', c')  #8 checkpoint(…) …  #20 loss
//   sweep:     #20 … #8 ⟶ re-run #8's fn as #31…#60, sweep #60…#31 ⟶ drop them ⟶ #7 ⟶ re-run …
//
// So a sequence cut into pieces of k steps holds T/k pieces' outputs plus one piece's intermediates
// at a time: O(T/k + k) steps of memory for one more forward pass (PyTorch's
// torch.utils.checkpoint, JAX's remat). The re-run entries send to the real inputs and to the
// parameters exactly what an unrecomputed sweep sends, in the same order, so the gradients are the
// same bit for bit (tests/test_checkpoint.cpp). A leaf's gradient-ready hook (backward.hpp) fires once
// the re-run is swept: the checkpoint entry lists the parameters fn reads among its inputs.
//
// With create_graph the re-run entries and the backward recorded over them stay on the tape, so the
// gradient can be differentiated again (a second sweep re-runs the pieces it reaches, too). With
// retain they stay as well; without, each re-run is dropped as soon as it is swept. explain_backward
// shows each re-run under its checkpoint entry ("re-ran 12 entries").
//
// Randomness. A draw from any Generator inside fn (Dropout's own, the default one, a user's) is
// replayed: the first run logs each generator's state before its first draw (GeneratorLog,
// core/random.hpp), and the re-run restores those states, runs, and puts the generators back where
// they were, so the training stream goes on as without the checkpoint. (Why not keep dropout's
// masks instead: that would keep per-step tensors the size of the activations — the memory the
// checkpoint is there to save — and would work only for the draws rewind knows of.)
//
// What fn may do: read its inputs and any leaf (parameters, constants) it closes over; return at
// least one tensor. A tensor with history from outside must come in through `inputs` (fn's first
// run records on a tape of its own, where it would be foreign: TapeError). fn, and what it closes
// over (a cell, its generators), must live until the backward, and compute the same from the same
// inputs: the re-run's outputs are compared with the first run's, bit for bit, and a difference —
// an input changed in place, a draw not from a Generator — is a TapeError rather than a wrong gradient.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "tape.hpp"

namespace rwd {

/// What checkpoint runs: outputs from inputs.
using CheckpointFn = std::function<std::vector<Tensor>(const std::vector<Tensor>& inputs)>;

/// fn(inputs), recorded as one entry named `name` that keeps only the inputs and the outputs and runs
/// fn again in the backward (see the top of this file). Returns fn's outputs — one of fn's inputs or a
/// parameter returned as is comes back as itself. Without grad mode, just fn(inputs).
std::vector<Tensor> checkpoint(const CheckpointFn& fn, const std::vector<Tensor>& inputs,
                               const std::string& name = "checkpoint");

}  // namespace rwd
