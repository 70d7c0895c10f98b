#include "torch_import.hpp"

#include <map>
#include <set>

#include "../core/npz.hpp"
#include "gru_cell.hpp"
#include "lstm_cell.hpp"
#include "recur.hpp"
#include "rnn_cell.hpp"
#include "recurrent.hpp"

namespace rwd {

namespace {

// One parameter as both sides name it.
struct Entry {
  std::string torch_key;  // "weight_ih_l1_reverse"
  std::string path;       // rewind's name: "layer1_reverse.cell.weight_ih"
  Tensor param;
  std::string note = {};  // why its shape may differ from PyTorch's, for the ShapeError ("" if nothing to say)
};

// The four tensors of a built-in cell under PyTorch's names + `suffix` ("" for nn.LSTMCell, "_l0" for
// layer 0 of nn.LSTM). Throws for what PyTorch has no key for.
bool cell_entries(const Cell& cell, const std::string& prefix, const std::string& suffix, const std::string& path,
                  const std::string& who, std::vector<Entry>& out) {
  const Tensor *w_ih, *w_hh, *b_ih, *b_hh;
  auto refuse = [&](const std::string& why) {
    throw ValueError("load_torch: " + who + ": " + cell.repr() + " " + why + " — PyTorch has no key for it");
  };
  if (auto* c = dynamic_cast<const RNNCell*>(&cell)) {
    if (c->h0.defined()) refuse("has a learned initial state (h0)");
    w_ih = &c->weight_ih, w_hh = &c->weight_hh, b_ih = &c->bias_ih, b_hh = &c->bias_hh;
  } else if (auto* c = dynamic_cast<const LSTMCell*>(&cell)) {
    if (c->peephole()) refuse("has peephole weights (w_ci, w_cf, w_co)");
    if (c->h0.defined()) refuse("has a learned initial state (h0, c0)");
    w_ih = &c->weight_ih, w_hh = &c->weight_hh, b_ih = &c->bias_ih, b_hh = &c->bias_hh;
  } else if (auto* c = dynamic_cast<const GRUCell*>(&cell)) {
    if (!c->reset_after()) refuse("applies the reset gate before the recurrent product (PyTorch's GRU applies it after)");
    if (c->h0.defined()) refuse("has a learned initial state (h0)");
    w_ih = &c->weight_ih, w_hh = &c->weight_hh, b_ih = &c->bias_ih, b_hh = &c->bias_hh;
  } else {
    return false;
  }
  for (auto [name, t] : {std::pair{"weight_ih", w_ih}, {"weight_hh", w_hh}, {"bias_ih", b_ih}, {"bias_hh", b_hh}})
    out.push_back({prefix + name + suffix, path + name, *t});
  return true;
}

void collect(const Module& m, const std::string& prefix, const std::string& path, std::vector<Entry>& out) {
  if (auto* r = dynamic_cast<const Recurrent*>(&m)) {
    // nn.RNN / nn.LSTM / nn.GRU: weight_ih_l{k}[_reverse], …
    for (std::size_t l = 0; l < r->num_layers(); ++l)
      for (bool reverse : {false, true}) {
        if (reverse && !r->bidirectional()) continue;
        const std::string k = std::to_string(l) + (reverse ? "_reverse" : "");
        if (!cell_entries(r->cell(l, reverse), prefix, "_l" + k, path + "layer" + k + ".cell.", r->repr(), out))
          throw ValueError("load_torch: " + r->repr() + ": layer " + k + " is " + r->cell(l, reverse).repr() +
                           ", not an RNNCell, LSTMCell or GRUCell — PyTorch's nn.RNN/LSTM/GRU keys do not describe it");
        // The weights do not depend on the merge, so one Merge::sum layer loads PyTorch's and computes
        // its output's two halves added. Stacked, the layers above take H features, PyTorch's 2H.
        if (l > 0 && r->bidirectional() && r->options().merge == Merge::sum)
          out[out.size() - 4].note = " (this layer merges its directions with Merge::sum, so layer " + std::to_string(l) +
                                     " takes the H features of their sum; PyTorch's stacked bidirectional layers take "
                                     "the 2H of both directions concatenated, Merge::concat)";
      }
    return;
  }
  if (auto* r = dynamic_cast<const Recur*>(&m)) {
    // nn.RNNCell / nn.LSTMCell / nn.GRUCell: the cell's own keys, without Recur's "cell.".
    if (!cell_entries(r->cell(), prefix, "", path + "cell.", r->repr(), out)) collect(r->cell(), prefix, path + "cell.", out);
    return;
  }
  if (auto* c = dynamic_cast<const Cell*>(&m))
    if (cell_entries(*c, prefix, "", path, c->repr(), out)) return;
  if (auto* t = dynamic_cast<const TimeDistributed*>(&m)) {
    collect(t->inner(), prefix, path + "layer.", out);  // PyTorch applies the layer itself over time
    return;
  }
  // Anything else: its own parameters by name (named_parameters lists them before the children's), then
  // each child under "<name>.".
  const NamedTensors all = m.named_parameters();
  std::size_t in_children = 0;
  for (const auto& [name, child] : m.named_children()) in_children += child->named_parameters().size();
  for (std::size_t i = 0; i + in_children < all.size(); ++i) out.push_back({prefix + all[i].first, path + all[i].first, all[i].second});
  for (const auto& [name, child] : m.named_children()) collect(*child, prefix + name + ".", path + name + ".", out);
}

// Every parameter the model takes, as both sides name it; `source` (the .npz file, or "") is added to
// the message of a model PyTorch has no keys for.
std::vector<Entry> entries_of(const Module& model, const std::string& prefix, const std::string& source) {
  std::vector<Entry> want;
  try {
    collect(model, prefix, "", want);
  } catch (const ValueError& e) {  // the model has parameters PyTorch has no key for
    if (source.empty()) throw;
    throw ValueError(std::string(e.what()) + " (loading '" + source + "')");
  }
  return want;
}

// `source` names where the state_dict came from (the .npz file), for the messages; empty for a NamedTensors.
// `not_read` are keys the file holds that the model does not take, left unread (an integer
// num_batches_tracked, another submodule's arrays): unexpected under the prefix, like the state_dict's.
void load_from(Module& model, const NamedTensors& state_dict, const std::string& prefix, TorchKeys keys,
               const std::string& source, const std::vector<std::string>& not_read = {}) {
  const std::string from = source.empty() ? "" : " from '" + source + "'";
  const std::vector<Entry> want = entries_of(model, prefix, source);
  const std::string who = "load_torch: " + model.repr() + from + ": ";

  std::map<std::string, Tensor> given;
  for (const auto& [k, t] : state_dict)
    if (!given.emplace(k, t).second) throw ValueError(who + "key " + quote_key(k) + " appears twice in the state_dict");

  // Check everything before touching anything: a failed load leaves the model as it was.
  std::vector<std::string> missing, unexpected;
  std::map<std::string, const Entry*> known;
  for (const Entry& e : want) {
    known.emplace(e.torch_key, &e);
    auto it = given.find(e.torch_key);
    if (it == given.end()) {
      missing.push_back(e.torch_key);
      continue;
    }
    if (!it->second.defined()) throw ValueError(who + "key " + quote_key(e.torch_key) + " holds an undefined tensor");
  }
  for (const auto& [k, t] : state_dict)
    if (k.compare(0, prefix.size(), prefix) == 0 && !known.count(k)) unexpected.push_back(k);
  for (const std::string& k : not_read)
    if (k.compare(0, prefix.size(), prefix) == 0 && !known.count(k)) unexpected.push_back(k);
  if (keys != TorchKeys::partial && !missing.empty())
    throw ValueError(who + "missing key" + (missing.size() > 1 ? "s " : " ") + quote_keys(missing) +
                     (prefix.empty() ? "" : " (under the prefix " + quote_key(prefix) + ")"));
  if (keys == TorchKeys::exact && !unexpected.empty())
    throw ValueError(who + "unexpected key" + (unexpected.size() > 1 ? "s " : " ") + quote_keys(unexpected) +
                     " (the model takes " + std::to_string(want.size()) + " keys" +
                     (prefix.empty() ? "" : " under the prefix " + quote_key(prefix)) + ")");
  for (const Entry& e : want) {
    auto it = given.find(e.torch_key);
    if (it != given.end() && it->second.shape() != e.param.shape())
      throw ShapeError(who + "key " + quote_key(e.torch_key) + " is " + it->second.shape().str() + " in the state_dict but " +
                       e.path + " is " + e.param.shape().str() + e.note);
  }

  std::vector<std::pair<Tensor, Tensor>> copies;
  for (const Entry& e : want) {
    auto it = given.find(e.torch_key);
    if (it != given.end()) copies.emplace_back(e.param, it->second);
  }
  detail::assign_all(copies);
}

// The .npz at `path`: only the arrays the model takes are read (an integer array or another submodule's
// weights beside them are no obstacle, and cost nothing); the other keys are passed on by name.
void load_file(Module& model, const std::string& path, const std::string& prefix, TorchKeys keys) {
  const std::vector<std::string> held = npz_keys(path);
  std::set<std::string> takes;
  for (const Entry& e : entries_of(model, prefix, path)) takes.insert(e.torch_key);
  std::vector<std::string> read, not_read;
  for (const std::string& k : held) (takes.count(k) ? read : not_read).push_back(k);
  load_from(model, load_npz(path, read), prefix, keys, path, not_read);
}

}  // namespace

NamedTensors torch_keys(const Module& model, const std::string& prefix) {
  std::vector<Entry> entries;
  collect(model, prefix, "", entries);
  NamedTensors out;
  for (const Entry& e : entries) out.emplace_back(e.torch_key, e.param);
  return out;
}

void load_torch(Module& model, const NamedTensors& state_dict, const std::string& prefix, bool strict) {
  load_from(model, state_dict, prefix, strict ? TorchKeys::exact : TorchKeys::partial, "");
}
void load_torch(Module& model, const NamedTensors& state_dict, const std::string& prefix, TorchKeys keys) {
  load_from(model, state_dict, prefix, keys, "");
}

void load_torch(Module& model, const std::string& npz_path, const std::string& prefix, bool strict) {
  load_file(model, npz_path, prefix, strict ? TorchKeys::exact : TorchKeys::partial);
}
void load_torch(Module& model, const std::string& npz_path, const std::string& prefix, TorchKeys keys) {
  load_file(model, npz_path, prefix, keys);
}

}  // namespace rwd
