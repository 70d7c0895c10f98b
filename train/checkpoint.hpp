// rewind/train/checkpoint.hpp — a training run in one .npz file: the model's parameters, the
// optimizer's state and, if asked, the learning-rate schedule's and the number of epochs done, so
// that training resumes exactly where it stopped.
//
//   save_checkpoint("run.npz", model, opt, {.schedule = &sched, .epoch = 12});
//   …                                                       // later, in a new process:
//   TrainingState resume{.schedule = &sched};               // the same model, optimizer and schedule, built again
//   load_checkpoint("run.npz", model, opt, resume);         // resume.epoch == 12
//   fit(opt, batches, loss, {.epochs = 30, .initial_epoch = resume.epoch});
//
// Keys: "model/<parameter name>", "optim/<state key>" (Optimizer::state_dict), and with a
// TrainingState "train/epoch", "schedule/<key>" (LRScheduler::state_dict) and "plateau/<key>"
// (ReduceLROnPlateau::state_dict). NumPy reads the file like any other .npz.
//
// A load takes exactly the parts the file holds: a file with a schedule's state is refused by a load
// without that schedule (and the other way round), as is a file of one kind of schedule loaded into
// another, or into one configured otherwise (optim/schedule.hpp): each would resume along another
// learning-rate curve without a word. What the file cannot tell: a model whose layers hold the same
// parameter names and shapes in another arrangement (two Dense(8, 8) swapped in a Chain load each
// other's weights, as in PyTorch), an optimizer made over the same shapes in another order, and a
// LambdaLR's function.
//
// A save refuses (ValueError, the old file left as it was) an optimizer state that a load would refuse
// — a NaN, an infinity or a negative mean of squares in it (a run whose gradients went non-finite) —
// so that the last good checkpoint is not replaced by one that cannot resume.
#pragma once

#include <cstddef>
#include <string>

#include "../nn/module.hpp"
#include "../optim/optimizer.hpp"
#include "../optim/schedule.hpp"

namespace rwd {

/// What a checkpoint holds beside the model and the optimizer so that a run resumes exactly: its
/// schedules (either, both or none) and how many epochs it has done.
struct TrainingState {
  LRScheduler* schedule = nullptr;       ///< an epoch schedule (StepLR, CosineAnnealingLR, …), or none
  ReduceLROnPlateau* plateau = nullptr;  ///< a ReduceLROnPlateau, or none
  std::size_t epoch = 0;                 ///< epochs done: saved, and set by a load (fit's initial_epoch)
};

/// Writes model and optimizer state to `path` atomically.
void save_checkpoint(const std::string& path, const Module& model, const Optimizer& optimizer);

/// Writes model, optimizer, the schedules `state` points to and `state.epoch` to `path` atomically.
void save_checkpoint(const std::string& path, const Module& model, const Optimizer& optimizer,
                     const TrainingState& state);

/// Restores both from `path`. All or nothing: if the file, the model part or the optimizer part is
/// wrong, an exception names the file and the key, and neither the model nor the optimizer changes.
/// The exception is the type load_state_dict threw (ShapeError for a shape, DtypeError for a dtype,
/// ValueError for a key or a value), its message prefixed with the file and the part.
void load_checkpoint(const std::string& path, Module& model, Optimizer& optimizer);

/// Restores model, optimizer, the schedules `state` points to, and `state.epoch`, from a file that
/// save_checkpoint wrote with the same parts. All or nothing, as above.
void load_checkpoint(const std::string& path, Module& model, Optimizer& optimizer, TrainingState& state);

}  // namespace rwd
