// rewind/nn/serialize.hpp — a model's parameters in and out of .npz files (keys = parameter names).
//
//   save(model, "model.npz");     // NumPy: np.load("model.npz")["0.weight"]
//   load(model, "model.npz");     // everything checked first; on error the model is unchanged
//
// A PyTorch model's weights come over with one line of Python (keys must match rewind's names;
// nn/torch_import.hpp maps recurrent layers' PyTorch keys):
//   np.savez("w.npz", **{k: v.detach().double().numpy() for k, v in model.state_dict().items()})
#pragma once

#include <string>

#include "module.hpp"

namespace rwd {

/// Writes every parameter of `model` to `path` (atomically: temp file + rename).
void save(const Module& model, const std::string& path);

/// Reads `path` and loads it into `model` (strict: the keys must be exactly the model's). Throws
/// IOError for a bad file, ValueError/ShapeError naming the key for a mismatch; an error from
/// loading the values into the model (any rwd type, kept) has the path in front of its message. The
/// model is left unchanged on any error. With strict=false an integer or boolean array the model has no parameter
/// for (a step counter) is skipped like any unexpected key.
void load(Module& model, const std::string& path, bool strict = true);

}  // namespace rwd
