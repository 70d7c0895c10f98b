#include "serialize.hpp"

#include <algorithm>

#include "../core/npz.hpp"

namespace rwd {

void save(const Module& model, const std::string& path) { save_npz(path, model.state_dict()); }

namespace {

// The file's float arrays. strict=false skips keys the model does not take, and an integer or boolean
// array (a step counter saved beside the weights) is such a key unless the model takes it.
NamedTensors read_state(const Module& model, const std::string& path, bool strict) {
  if (strict) return load_npz(path);  // any integer array is an error: load_npz names its key and dtype
  NpzContents contents = load_npz_all(path);
  const NamedTensors params = model.named_parameters();
  for (const auto& [key, array] : contents.indices)
    if (std::any_of(params.begin(), params.end(), [&](const auto& p) { return p.first == key; }))
      throw IOError("load: \"" + path + "\": key \"" + key + "\" holds an integer array, but the model's parameter " +
                    "is " + dtype_name(params.front().second.dtype()) + " (convert it in NumPy with a.astype('<f4') or '<f8')");
  return std::move(contents.tensors);
}

}  // namespace

void load(Module& model, const std::string& path, bool strict) {
  const NamedTensors state = read_state(model, path, strict);
  try {
    model.load_state_dict(state, strict);
  } catch (const ShapeError& e) {
    throw ShapeError(path + ": " + e.what());
  } catch (const DtypeError& e) {
    throw DtypeError(path + ": " + e.what());
  } catch (const ValueError& e) {
    throw ValueError(path + ": " + e.what());
  }
}

}  // namespace rwd
