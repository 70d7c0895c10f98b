#include "checkpoint.hpp"

#include <cmath>

#include "../core/npz.hpp"

namespace rwd {

namespace {

const std::string kModel = "model/", kOptim = "optim/", kSchedule = "schedule/", kPlateau = "plateau/",
                  kEpoch = "train/epoch";

void add(NamedTensors& all, const std::string& prefix, const NamedTensors& part) {
  for (const auto& [k, t] : part) all.emplace_back(prefix + k, t);
}

// The whole file, in parts (a TrainingState's keys only when `state`).
NamedTensors gather(const std::string& path, const Module& model, const Optimizer& optimizer,
                    const TrainingState* state) {
  const StateDict optim = optimizer.state_dict();
  try {
    optimizer.check_state_dict(optim);  // what a load would refuse is not saved over a good file
  } catch (const Error&) {
    rethrow_with_context("save_checkpoint: \"" + path + "\": the optimizer's state would not load back, not saved: ");
  }
  NamedTensors all;
  add(all, kModel, model.state_dict());
  add(all, kOptim, optim);
  if (state) {
    all.emplace_back(kEpoch, Tensor::scalar(static_cast<double>(state->epoch), Dtype::f64));
    if (state->schedule) add(all, kSchedule, state->schedule->state_dict());
    if (state->plateau) add(all, kPlateau, state->plateau->state_dict());
  }
  return all;
}

void load_parts(const std::string& path, Module& model, Optimizer& optimizer, TrainingState* state) {
  NamedTensors model_state, optim_state, schedule_state, plateau_state;
  const Tensor* epoch = nullptr;
  const NamedTensors all = load_npz(path);
  for (const auto& [k, t] : all) {
    if (k.rfind(kModel, 0) == 0)
      model_state.emplace_back(k.substr(kModel.size()), t);
    else if (k.rfind(kOptim, 0) == 0)
      optim_state.emplace_back(k.substr(kOptim.size()), t);
    else if (k.rfind(kSchedule, 0) == 0)
      schedule_state.emplace_back(k.substr(kSchedule.size()), t);
    else if (k.rfind(kPlateau, 0) == 0)
      plateau_state.emplace_back(k.substr(kPlateau.size()), t);
    else if (k == kEpoch)
      epoch = &t;
    else
      throw IOError(path + ": key " + quote_key(k) +
                    " is none of model/…, optim/…, schedule/…, plateau/…, train/epoch: not a rewind checkpoint");
  }

  // The parts the file holds must be the parts asked for: a part left out would restart (a schedule
  // from epoch 0) or be dropped without a word.
  const std::string how = "load_checkpoint(path, model, optimizer, state)";
  if (!state && (epoch || !schedule_state.empty() || !plateau_state.empty()))
    throw ValueError(path + ": the checkpoint holds a training state (" +
                     std::string(!schedule_state.empty() ? "a schedule, " : !plateau_state.empty() ? "a ReduceLROnPlateau, " : "") +
                     "the epoch): load it with " + how + ", or the run would not resume where it stopped");
  if (state) {
    if (!epoch)
      throw ValueError(path + ": the checkpoint holds no training state (no 'train/epoch'): it was saved by "
                              "save_checkpoint(path, model, optimizer); load it with load_checkpoint(path, model, optimizer)");
    auto part = [&](bool asked, bool held, const char* what) {
      if (asked && !held)
        throw ValueError(path + ": the checkpoint holds no " + what + " state, but one was given to restore");
      if (!asked && held)
        throw ValueError(path + ": the checkpoint holds a " + what + " state, but none was given to restore it into");
    };
    part(state->schedule != nullptr, !schedule_state.empty(), "schedule's");
    part(state->plateau != nullptr, !plateau_state.empty(), "ReduceLROnPlateau's");
  }
  std::size_t epochs = 0;
  if (epoch) {
    const double e = epoch->numel() == 1 ? epoch->item() : -1;
    if (!(std::isfinite(e) && e >= 0 && e <= 9007199254740992.0 && e == std::floor(e)))
      throw ValueError(path + ": 'train/epoch' is " + (epoch->numel() == 1 ? format_number(e) : epoch->shape().str()) +
                       ": must be one whole number >= 0");
    epochs = static_cast<std::size_t>(e);
  }

  // The model first (its own load checks everything before it changes anything), then the
  // optimizer's state checked, the schedules loaded, and the optimizer last, when nothing can fail any
  // more. What went in before a failure is put back from the copies kept aside (its own state always
  // loads): nothing changes unless everything loads.
  NamedTensors model_before;
  for (auto& [k, p] : model.state_dict()) model_before.emplace_back(k, p.detach());
  const StateDict schedule_before = state && state->schedule ? state->schedule->state_dict() : StateDict{};
  const StateDict plateau_before = state && state->plateau ? state->plateau->state_dict() : StateDict{};
  try {
    model.load_state_dict(model_state);
  } catch (const Error&) {
    rethrow_with_context(path + ": model part: ");
  }
  int done = 0;  // 1: the schedule loaded, 2: the plateau too
  try {
    // Each part's error names the file and the part.
    auto in_part = [&](const char* part, auto&& load) {
      try {
        load();
      } catch (const Error&) {
        rethrow_with_context(path + ": " + part + " part: ");
      }
    };
    in_part("optimizer", [&] { optimizer.check_state_dict(optim_state); });
    if (state && state->schedule) in_part("schedule", [&] { state->schedule->load_state_dict(schedule_state); });
    done = 1;
    if (state && state->plateau) in_part("plateau", [&] { state->plateau->load_state_dict(plateau_state); });
    done = 2;
    optimizer.load_state_dict(optim_state);  // checked above
  } catch (...) {
    if (done >= 2 && state && state->plateau) state->plateau->load_state_dict(plateau_before);
    if (done >= 1 && state && state->schedule) state->schedule->load_state_dict(schedule_before);
    model.load_state_dict(model_before);
    throw;
  }
  if (state) state->epoch = epochs;
}

}  // namespace

void save_checkpoint(const std::string& path, const Module& model, const Optimizer& optimizer) {
  save_npz(path, gather(path, model, optimizer, nullptr));
}

void save_checkpoint(const std::string& path, const Module& model, const Optimizer& optimizer,
                     const TrainingState& state) {
  save_npz(path, gather(path, model, optimizer, &state));
}

void load_checkpoint(const std::string& path, Module& model, Optimizer& optimizer) {
  load_parts(path, model, optimizer, nullptr);
}

void load_checkpoint(const std::string& path, Module& model, Optimizer& optimizer, TrainingState& state) {
  load_parts(path, model, optimizer, &state);
}

}  // namespace rwd
