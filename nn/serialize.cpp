#include "serialize.hpp"

#include <algorithm>

#include "../core/npz.hpp"

namespace rwd {

void save(const Module& model, const std::string& path) { save_npz(path, model.state_dict()); }

namespace {

// The file's arrays. strict=false skips keys the model does not take, so those are not read at all (an
// integer step counter saved beside the weights is no obstacle); strict reads everything, and any
// array rewind cannot load is an IOError naming its key.
NamedTensors read_state(const Module& model, const std::string& path, bool strict) {
  if (strict) return load_npz(path);
  const NamedTensors params = model.named_parameters();
  std::vector<std::string> taken;
  for (const std::string& key : npz_keys(path))
    if (std::any_of(params.begin(), params.end(), [&](const auto& p) { return p.first == key; })) taken.push_back(key);
  return load_npz(path, taken);
}

}  // namespace

void load(Module& model, const std::string& path, bool strict) {
  const NamedTensors state = read_state(model, path, strict);
  try {
    model.load_state_dict(state, strict);
  } catch (const Error&) {
    rethrow_with_context(path + ": ");  // the same type, with the file
  }
}

}  // namespace rwd
