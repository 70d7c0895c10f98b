#include "module.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <ostream>

#include "../core/detail/impl.hpp"
#include "../core/npz.hpp"  // quote_key, quote_keys
#include "../kernels/copy.hpp"  // cast

namespace rwd {

Tensor Module::forward(const Tensor&) {
  throw ValueError(repr() + ": this module does not take a single tensor (call it with its own arguments)");
}

Tensor Module::forward_masked(const Tensor& x, const Tensor& mask) {
  throw ValueError(repr() + ": this layer takes no mask (given " + x.shape().str() + " with a " + mask.shape().str() +
                   " mask); a sequence layer such as Recurrent does");
}

void check_size(const char* layer, const char* what, std::size_t n) {
  if (n == 0)
    throw ValueError(std::string(layer) + ": " + what + " must be at least 1, got 0 (a layer of size 0 computes nothing)");
}

std::string format_value(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

bool Module::parameter_dtype(Dtype& out) const {
  if (!m_params.empty()) {
    out = m_params.front().second.dtype();
    return true;
  }
  for (const auto& [name, child] : m_children)
    if (child->parameter_dtype(out)) return true;
  return false;
}

void Module::check_dtype(const Tensor& x, const std::string& what) const {
  Dtype params;
  if (!parameter_dtype(params) || x.dtype() == params) return;
  const std::string have = dtype_name(x.dtype()), want = dtype_name(params);
  throw DtypeError(repr() + ": " + what + " is " + have + " but the layer's parameters are " + want + " — .to(" + have +
                   ") the model, or .to(" + want + ") the " + what);
}

void Module::refuse_undefined(const Tensor& x, const char* what) const {
  if (!x.defined()) throw TapeError(repr() + ": " + what + " is an undefined tensor");
}

void Module::refuse_batch_0(const Tensor& x, const std::string& what) const {
  if (x.ndim() >= 2) refuse_batch_0(x.shape(), what);
}

void Module::refuse_batch_0(const Shape& shape, const std::string& what) const {
  if (shape.ndim() >= 1 && shape[shape.ndim() - 1] == 0)
    throw ShapeError(repr() + ": " + what + " " + shape.str() +
                     " has batch 0: an empty batch is refused (every layer needs at least one column)");
}

Tensor Module::register_parameter(const std::string& name, Tensor t) {
  for (const auto& [n, p] : m_params)
    if (n == name) throw ValueError(repr() + ": parameter '" + name + "' registered twice");
  t.set_requires_grad(true);
  t.set_name(name);
  m_params.emplace_back(name, t);
  return t;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> m) {
  if (!m) throw ValueError("register_module: '" + name + "' is null");
  for (const auto& [n, c] : m_children)
    if (n == name) throw ValueError("register_module: child '" + name + "' registered twice");
  // Display names follow the keys ("0.weight"), so a gradcheck report or a printed tape tells two
  // layers' weights apart. Renamed again, with a longer prefix, if this module becomes a child too.
  for (auto& [key, p] : m->named_parameters()) p.set_name(name + "." + key);
  m_children.emplace_back(name, std::move(m));
}

void Module::collect(const std::string& prefix, NamedTensors& out) const {
  for (const auto& [n, p] : m_params) out.emplace_back(prefix + n, p);
  for (const auto& [n, c] : m_children) c->collect(prefix + n + ".", out);
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  collect("", out);
  return out;
}

// Parameters in the order of named_parameters(), without building their names (zero_grad and
// optimizers call this every step).
void Module::collect_tensors(std::vector<Tensor>& out) const {
  for (const auto& [n, p] : m_params) out.push_back(p);
  for (const auto& [n, c] : m_children) c->collect_tensors(out);
}

// A tensor met again — a module shared by two parents (tied layers), one tensor registered in two —
// is kept the first time only, so an optimizer gets each once, as from PyTorch's parameters() (its
// memo). Without an allocation: a model's few tens of tensors compared pairwise; only past 64, where
// that would start to show beside a step, through a sorted copy of the identities.
std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  collect_tensors(out);
  std::size_t kept = 0;
  if (out.size() <= 64) {
    for (std::size_t i = 0; i < out.size(); ++i) {
      bool again = false;
      for (std::size_t j = 0; j < kept && !again; ++j) again = out[j].same(out[i]);
      if (!again) {
        if (kept != i) out[kept] = std::move(out[i]);
        ++kept;
      }
    }
  } else {
    std::vector<const detail::TensorImpl*> ids;
    ids.reserve(out.size());
    for (const Tensor& t : out) ids.push_back(&t.impl());
    std::sort(ids.begin(), ids.end());
    if (std::adjacent_find(ids.begin(), ids.end()) == ids.end()) return out;  // no tensor twice
    std::vector<const detail::TensorImpl*> met;
    for (std::size_t i = 0; i < out.size(); ++i) {
      const detail::TensorImpl* id = &out[i].impl();
      const auto at = std::lower_bound(met.begin(), met.end(), id);
      if (at != met.end() && *at == id) continue;
      met.insert(at, id);
      if (kept != i) out[kept] = std::move(out[i]);
      ++kept;
    }
  }
  out.resize(kept);
  return out;
}

std::size_t Module::num_parameters() const {
  std::size_t n = 0;
  for (const Tensor& p : parameters()) n += p.numel();
  return n;
}

void Module::train(bool on) {
  apply([on](Module& m) {
    m.m_training = on;
    m.on_train(on);
  });
}

void Module::zero_grad(bool set_to_none) {
  std::vector<Tensor> params;
  collect_tensors(params);  // a tied tensor cleared twice is cleared: no need to drop repeats
  for (Tensor& p : params) p.zero_grad(set_to_none);
}

void Module::to(Dtype dtype) {
  for (auto& [n, p] : named_parameters()) {
    detail::TensorImpl& impl = p.impl();
    if (impl.dtype() == dtype) continue;
    // Converted by the kernel every cast uses, then moved into the parameter's own impl, so every
    // handle to the parameter (the optimizer's, the caller's) sees the new dtype.
    Tensor converted = kernels::cast("Module::to", p, dtype);
    impl.value = std::move(converted.impl().value);
    impl.grad = Tensor();
  }
}

void Module::apply(const std::function<void(Module&)>& fn) {
  // Iterative, parents first.
  std::vector<Module*> stack{this};
  while (!stack.empty()) {
    Module* m = stack.back();
    stack.pop_back();
    fn(*m);
    for (auto it = m->m_children.rbegin(); it != m->m_children.rend(); ++it) stack.push_back(it->second.get());
  }
}

void Module::load_state_dict(const NamedTensors& state, bool strict) {
  const NamedTensors params = named_parameters();
  std::map<std::string, Tensor> given;
  for (const auto& [k, t] : state) {
    if (!given.emplace(k, t).second) throw ValueError("load_state_dict: key " + quote_key(k) + " appears twice");
  }
  // Check everything before touching anything: a failed load leaves the model as it was.
  std::vector<std::string> missing;
  for (const auto& [k, p] : params) {
    auto it = given.find(k);
    if (it == given.end()) {
      missing.push_back(k);
      continue;
    }
    if (!it->second.defined()) throw ValueError("load_state_dict: key " + quote_key(k) + " holds an undefined tensor");
    if (it->second.shape() != p.shape())
      throw ShapeError("load_state_dict: key " + quote_key(k) + ": the model's parameter is " + p.shape().str() +
                       " but the state has " + it->second.shape().str());
    if (strict && it->second.dtype() != p.dtype())
      throw DtypeError("load_state_dict: key " + quote_key(k) + ": the model's parameter is " + dtype_name(p.dtype()) +
                       " but the state has " + dtype_name(it->second.dtype()) +
                       " (convert the model with to(), or load with strict=false to convert the values)");
  }
  std::vector<std::string> unexpected;
  for (const auto& [k, t] : state) {
    const bool known = std::any_of(params.begin(), params.end(), [&](const auto& kv) { return kv.first == k; });
    if (!known) unexpected.push_back(k);
  }
  // Both lists when both are there, as PyTorch's message: a renamed key ('Weight' for 'weight') is one of each.
  if (strict && !missing.empty())
    throw ValueError("load_state_dict: missing key" + std::string(missing.size() > 1 ? "s " : " ") + quote_keys(missing) +
                     (unexpected.empty() ? std::string()
                                         : "; unexpected key" + std::string(unexpected.size() > 1 ? "s " : " ") +
                                               quote_keys(unexpected)));
  if (strict && !unexpected.empty())
    throw ValueError("load_state_dict: unexpected key" + std::string(unexpected.size() > 1 ? "s " : " ") + quote_keys(unexpected) +
                     " (the model has " + std::to_string(params.size()) + " parameters)");
  std::vector<std::pair<Tensor, Tensor>> copies;
  for (const auto& [k, p] : params) {
    auto it = given.find(k);
    if (it != given.end()) copies.emplace_back(p, it->second);
  }
  detail::assign_all(copies);
}

void detail::assign_all(const std::vector<std::pair<Tensor, Tensor>>& destination_source) {
  // Source i is read after destinations 0 … i−1 are written: if one of them shares its storage (a swap,
  // or a view of another parameter), it is copied before anything is written. Nothing else is copied,
  // so loading a model's own state_dict back costs no memory.
  std::vector<Tensor> sources;
  sources.reserve(destination_source.size());
  for (std::size_t i = 0; i < destination_source.size(); ++i) {
    const Tensor& src = destination_source[i].second;
    bool aliased = false;
    for (std::size_t j = 0; j < i && !aliased; ++j) aliased = destination_source[j].first.shares_storage(src);
    sources.push_back(aliased ? src.detach() : src);
  }
  for (std::size_t i = 0; i < destination_source.size(); ++i) Tensor(destination_source[i].first).assign(sources[i]);
}

std::string Module::summary() const {
  struct Row {
    std::string name, layer;
    std::size_t params;
  };
  std::vector<Row> rows;
  // Depth-first, parents first, with dotted names. A module met again (shared) is one row naming where
  // it was first, with no parameters of its own: the rows add up to the total, which counts it once.
  std::vector<std::pair<std::string, const Module*>> stack{{"", this}};
  std::vector<std::pair<const Module*, std::string>> seen;
  while (!stack.empty()) {
    auto [name, m] = stack.back();
    stack.pop_back();
    // A container shows its type only: its layers have rows of their own.
    const std::string layer = m->m_children.empty() ? m->repr() : m->repr().substr(0, m->repr().find('('));
    const auto first = std::find_if(seen.begin(), seen.end(), [m = m](const auto& e) { return e.first == m; });
    if (first != seen.end()) {
      rows.push_back({name, layer + " (shared with " + first->second + ")", 0});
      continue;
    }
    seen.emplace_back(m, name.empty() ? "(model)" : name);
    std::size_t own = 0;
    for (const auto& [n, p] : m->m_params) own += p.numel();
    rows.push_back({name.empty() ? "(model)" : name, layer, own});
    for (auto it = m->m_children.rbegin(); it != m->m_children.rend(); ++it)
      stack.emplace_back(name.empty() ? it->first : name + "." + it->first, it->second.get());
  }
  std::size_t w0 = 5, w1 = 5;
  for (const Row& r : rows) {
    w0 = std::max(w0, r.name.size());
    w1 = std::max(w1, r.layer.size());
  }
  auto pad = [](std::string s, std::size_t w) { return s + std::string(w > s.size() ? w - s.size() : 0, ' '); };
  std::string out = pad("name", w0) + "  " + pad("layer", w1) + "  params\n";
  for (const Row& r : rows) out += pad(r.name, w0) + "  " + pad(r.layer, w1) + "  " + std::to_string(r.params) + "\n";
  out += "total: " + std::to_string(num_parameters()) + " parameters\n";
  return out;
}

std::ostream& operator<<(std::ostream& os, const Module& m) { return os << m.repr(); }

}  // namespace rwd
