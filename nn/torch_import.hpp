// rewind/nn/torch_import.hpp — PyTorch state_dicts into rewind layers.
//
// On the Python side, save the state_dict as an .npz (float32 or float64):
//
//   >>> np.savez("lstm.npz", **{k: v.detach().numpy() for k, v in model.state_dict().items()})
//
// and load it into the matching rewind model:
//
//   Recurrent lstm = LSTM(10, 20, {}, {.num_layers = 2, .bidirectional = true});  // nn.LSTM(10, 20, 2, bidirectional=True)
//   load_torch(lstm, "lstm.npz");
//
// The keys map as follows (the parameter shapes are PyTorch's already, so no value is transposed):
//
//   nn.RNN / nn.LSTM / nn.GRU → Recurrent     weight_ih_l{k}[_reverse]  → layer{k}[_reverse].cell.weight_ih
//                                              weight_hh_l{k}[_reverse]  → … .weight_hh
//                                              bias_ih_l{k}[_reverse], bias_hh_l{k}[_reverse] → … .bias_ih, .bias_hh
//   nn.RNNCell / nn.LSTMCell / nn.GRUCell → Recur or a bare cell: weight_ih, weight_hh, bias_ih, bias_hh
//   nn.Linear → Dense (weight, bias);  nn.Embedding → Embedding (weight);  nn.LayerNorm → LayerNorm
//   nn.Sequential → Chain ("0.weight", …);  a TimeDistributed is transparent (its layer's keys)
//
// Any other module maps its own parameters by name and its children under "<child>.", so a Chain of
// these loads a PyTorch model whose attributes carry the same names. `prefix` selects a submodule's
// keys in a larger state_dict (load_torch(rnn, sd, "encoder.rnn.")); keys outside the prefix are ignored.
//
// The cells must be PyTorch's: an LSTM without peepholes, a GRU with reset_after (PyTorch's form), no
// learned initial state — anything else has parameters PyTorch has no key for, and is refused by name.
// The nonlinearity of an nn.RNN (tanh/relu) is not in its state_dict: build the RNN with the same one.
// A bidirectional layer computes what PyTorch computes with Merge::concat. The weights do not depend
// on the merge, so a one-layer Merge::sum layer loads them too and computes PyTorch's output with its
// two halves added (out[:, :H] + out[:, H:]); stacked, its upper layers take H features where
// PyTorch's take 2H, a ShapeError naming the key and the merge.
//
// Loading is all or nothing: every key is checked first — each expected key present (unless
// TorchKeys::partial), no unexpected key under the prefix (TorchKeys::exact), each shape equal — and a failure throws (ValueError for keys,
// ShapeError for shapes, naming the PyTorch key, the rewind parameter and both shapes) before any
// parameter changes.
#pragma once

#include <string>

#include "module.hpp"

namespace rwd {

/// Each PyTorch key the model takes (with `prefix`), paired with the live rewind parameter it fills.
/// Also an exporter: `save_npz(path, torch_keys(model))` writes a file torch can load_state_dict from.
NamedTensors torch_keys(const Module& model, const std::string& prefix = "");

/// Which keys of a state_dict load_torch insists on.
enum class TorchKeys {
  exact,              ///< every key the model takes, and no other under the prefix (strict = true)
  ignore_unexpected,  ///< every key the model takes; keys it does not take are ignored (an optimizer's,
                      ///< a head the model lacks) — a missing one is still an error
  partial,            ///< what is there is loaded, what is missing keeps its value (strict = false)
};

/// Copies a PyTorch state_dict into `model` (see the top of this file). `strict` = false skips
/// missing keys and ignores unexpected ones; shapes are always checked.
void load_torch(Module& model, const NamedTensors& state_dict, const std::string& prefix = "", bool strict = true);
/// The same, with the keys it insists on chosen by `keys`.
void load_torch(Module& model, const NamedTensors& state_dict, const std::string& prefix, TorchKeys keys);

/// The same from an .npz file (np.savez of the state_dict's arrays); errors name the file. Only the arrays
/// the model takes are read: the others (an integer num_batches_tracked, another submodule's weights)
/// are keys like any other — ignored outside the prefix or under ignore_unexpected, unexpected under
/// exact. A key the model takes that holds an integer array is load_npz's IOError, naming it.
void load_torch(Module& model, const std::string& npz_path, const std::string& prefix = "", bool strict = true);
void load_torch(Module& model, const std::string& npz_path, const std::string& prefix, TorchKeys keys);

}  // namespace rwd
