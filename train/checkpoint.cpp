#include "checkpoint.hpp"

#include "../core/npz.hpp"

namespace rwd {

namespace {
const std::string kModel = "model/", kOptim = "optim/";
}  // namespace

void save_checkpoint(const std::string& path, const Module& model, const Optimizer& optimizer) {
  NamedTensors all;
  for (auto& [k, t] : model.state_dict()) all.emplace_back(kModel + k, t);
  for (auto& [k, t] : optimizer.state_dict()) all.emplace_back(kOptim + k, t);
  save_npz(path, all);
}

void load_checkpoint(const std::string& path, Module& model, Optimizer& optimizer) {
  NamedTensors model_state, optim_state;
  for (auto& [k, t] : load_npz(path)) {
    if (k.rfind(kModel, 0) == 0)
      model_state.emplace_back(k.substr(kModel.size()), t);
    else if (k.rfind(kOptim, 0) == 0)
      optim_state.emplace_back(k.substr(kOptim.size()), t);
    else
      throw IOError(path + ": key '" + k + "' is neither model/… nor optim/…: not a rewind checkpoint");
  }
  // The model's values are kept aside so that an optimizer state that fails its checks after the
  // model loaded puts the model back: neither changes unless both load.
  NamedTensors before;
  for (auto& [k, p] : model.state_dict()) before.emplace_back(k, p.detach());
  try {
    model.load_state_dict(model_state);
  } catch (const Error&) {
    rethrow_with_context(path + ": model part: ");
  }
  try {
    optimizer.load_state_dict(optim_state);
  } catch (const Error&) {
    model.load_state_dict(before);
    rethrow_with_context(path + ": optimizer part: ");
  }
}

}  // namespace rwd
