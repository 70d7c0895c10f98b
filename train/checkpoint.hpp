// rewind/train/checkpoint.hpp — a training run in one .npz file: the model's parameters and the
// optimizer's state, so that training resumes exactly where it stopped.
//
// Keys: "model/<parameter name>" and "optim/<state key>" (see Optimizer::state_dict). NumPy reads the
// file like any other .npz.
#pragma once

#include <string>

#include "../nn/module.hpp"
#include "../optim/optimizer.hpp"

namespace rwd {

/// Writes model and optimizer state to `path` atomically.
void save_checkpoint(const std::string& path, const Module& model, const Optimizer& optimizer);

/// Restores both from `path`. All or nothing: if the file, the model part or the optimizer part is
/// wrong, an exception names the file and the key, and neither the model nor the optimizer changes.
/// The exception is the type load_state_dict threw (ShapeError for a shape, DtypeError for a dtype,
/// ValueError for a key), its message prefixed with the file and the part.
void load_checkpoint(const std::string& path, Module& model, Optimizer& optimizer);

}  // namespace rwd
