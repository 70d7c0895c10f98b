#include "optimizer.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "../autograd/tape.hpp"
#include "../core/npz.hpp"  // quote_key

namespace rwd {

void check_hyper(bool ok, const char* who, const char* what, double value, const char* rule) {
  if (!ok)
    throw ValueError(std::string(who) + ": invalid " + what + ": " + format_number(value) + " (" + rule + ")");
}

void refuse_repeated_params(const std::vector<Tensor>& params, const std::string& who, const char* why) {
  std::vector<std::pair<const void*, std::size_t>> ids(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) ids[i] = {params[i].impl_ptr().get(), i};
  std::sort(ids.begin(), ids.end());  // equal identities adjacent, each run in index order
  for (std::size_t k = 1; k < ids.size(); ++k)
    if (ids[k].first == ids[k - 1].first)
      throw ValueError(who + ": parameter " + std::to_string(ids[k].second) + " is the same tensor as parameter " +
                       std::to_string(ids[k - 1].second) + ": each parameter may appear once (" + why + ")");
}

std::string format_number(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}

Optimizer::Optimizer(const char* name, std::vector<Tensor> params, double lr, std::vector<Slot> slots)
    : m_name(name), m_params(std::move(params)), m_lr(lr), m_slots(std::move(slots)) {
  check_hyper(std::isfinite(lr) && lr >= 0, name, "learning rate", lr, "must be finite and >= 0");
  // As PyTorch: an optimizer of nothing is a mistake (a model's parameters() taken before its layers
  // were added, a filter that matched none), not a quiet no-op.
  if (m_params.empty()) throw ValueError(std::string(name) + ": got an empty parameter list: there is nothing to optimize");
  for (std::size_t i = 0; i < m_params.size(); ++i) {
    const Tensor& p = m_params[i];
    const std::string which = std::string(name) + ": parameter " + std::to_string(i);
    if (!p.defined()) throw ValueError(which + " is an undefined tensor");
    if (!p.is_leaf())
      throw ValueError(which + " " + p.shape().str() +
                       " is not a leaf (it was computed by a recorded op); optimize the leaf it came from, "
                       "or detach() it");
  }
  refuse_repeated_params(m_params, name, "it would be updated twice per step");
  m_state.resize(m_params.size());
}

void Optimizer::set_lr(double lr) {
  check_hyper(std::isfinite(lr) && lr >= 0, m_name, "learning rate", lr, "must be finite and >= 0");
  m_lr = lr;
}

void Optimizer::step() {
  NoGradGuard no_grad;
  // Check every gradient first (a value freed with its tape throws here), so a step never stops
  // half way with some parameters updated and others not.
  std::vector<Tensor> grads(m_params.size());
  for (std::size_t i = 0; i < m_params.size(); ++i) {
    Tensor g = m_params[i].grad();
    if (!g.defined()) continue;
    g.impl();  // throws TapeError if released
    // (set_grad and backward keep these equal; checked because the loops below trust them)
    auto who = [&] { return std::string(m_name) + ".step"; };
    auto param = [&] { return "parameter " + std::to_string(i); };
    if (g.shape() != m_params[i].shape())
      throw_shape_error(who().c_str(), {{param().c_str(), m_params[i].shape()}, {"its grad", g.shape()}},
                        "a gradient must have its parameter's shape");
    if (g.dtype() != m_params[i].dtype())
      throw DtypeError(who() + ": " + param() + " is " + dtype_name(m_params[i].dtype()) + " and its grad is " +
                       dtype_name(g.dtype()));
    grads[i] = std::move(g);
  }
  for (std::size_t i = 0; i < m_params.size(); ++i)
    if (grads[i].defined()) update(i, m_params[i], grads[i]);
  ++m_step_count;
}

void Optimizer::zero_grad(bool set_to_none) {
  for (Tensor& p : m_params) p.zero_grad(set_to_none);
}

bool Optimizer::init_state(std::size_t i) {
  std::vector<Tensor>& s = m_state[i];
  if (!s.empty()) return false;
  s.reserve(m_slots.size());
  for (const Slot& slot : m_slots)
    s.push_back(slot.counter ? Tensor::scalar(0.0, Dtype::f64) : Tensor::zeros(m_params[i].shape(), m_params[i].dtype()));
  return true;
}

// ---- saving and restoring ----

StateDict Optimizer::state_dict() const {
  StateDict out;
  out.emplace_back("step", Tensor::scalar(static_cast<double>(m_step_count), Dtype::f64));
  out.emplace_back("lr", Tensor::scalar(m_lr, Dtype::f64));
  for (std::size_t i = 0; i < m_params.size(); ++i)
    for (std::size_t k = 0; k < m_state[i].size(); ++k)
      out.emplace_back(std::to_string(i) + "." + m_slots[k].name, m_state[i][k].detach());
  return out;
}

namespace {

// A counter saved as a float64: a whole number in [0, 2^53].
bool is_count(double x) { return std::isfinite(x) && x >= 0 && x <= 9007199254740992.0 && x == std::floor(x); }

}  // namespace

Optimizer::CheckedState Optimizer::check_state(const StateDict& state) const {
  const std::string who = std::string(m_name) + ".load_state_dict";
  const std::size_t n = m_params.size();
  CheckedState out;
  out.slots.assign(n, std::vector<const Tensor*>(m_slots.size(), nullptr));
  auto& slots = out.slots;

  // 1. Every key is known and appears once; every tensor is defined.
  std::map<std::string, const Tensor*> by_key;
  for (const auto& [key, value] : state) {
    if (!by_key.emplace(key, &value).second) throw ValueError(who + ": key " + quote_key(key) + " appears twice");
    if (!value.defined()) throw ValueError(who + ": " + quote_key(key) + " is an undefined tensor");
    if (key == "step" || key == "lr") continue;
    // "<i>.<slot>", i a decimal parameter index
    const std::size_t dot = key.find('.');
    bool known = dot != std::string::npos && dot > 0 && dot <= 9;
    std::size_t i = 0, k = m_slots.size();
    for (std::size_t c = 0; known && c < dot; ++c) {
      if (key[c] < '0' || key[c] > '9' || (c == 0 && key[c] == '0' && dot > 1)) known = false;
      i = i * 10 + static_cast<std::size_t>(key[c] - '0');
    }
    if (known && i < n)
      for (std::size_t s = 0; s < m_slots.size(); ++s)
        if (key.compare(dot + 1, std::string::npos, m_slots[s].name) == 0) k = s;
    if (!known || i >= n || k == m_slots.size()) {
      std::string expected;
      for (const Slot& s : m_slots) expected += (expected.empty() ? "" : ", ") + s.name;
      throw ValueError(who + ": unexpected key " + quote_key(key) + ": expected 'step', 'lr' and '<i>.<slot>' with i < " +
                       std::to_string(n) + " (the number of parameters) and slot one of: " +
                       (expected.empty() ? "(none: " + std::string(m_name) + " keeps no per-parameter state)"
                                         : expected));
    }
    slots[i][k] = &value;
  }

  // 2. Nothing is missing: the global entries, and for each parameter all of its slots or none.
  for (const char* key : {"step", "lr"})
    if (!by_key.count(key)) throw ValueError(who + ": missing key '" + key + "'");
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t present = 0;
    for (const Tensor* t : slots[i]) present += t != nullptr;
    if (present == 0 || present == m_slots.size()) continue;
    for (std::size_t k = 0; k < m_slots.size(); ++k)
      if (!slots[i][k])
        throw ValueError(who + ": missing key '" + std::to_string(i) + "." + m_slots[k].name +
                         "' (the state of parameter " + std::to_string(i) + " is incomplete)");
  }

  // 3. Shapes, dtypes and values.
  auto check_scalar = [&](const std::string& key, const Tensor& t) {
    if (t.numel() != 1)
      throw_shape_error(who.c_str(), {{("'" + key + "'").c_str(), t.shape()}, {"expected", Shape{}}},
                        "a counter or rate holds one value");
  };
  const Tensor& step = *by_key["step"];
  const Tensor& lr = *by_key["lr"];
  check_scalar("step", step);
  check_scalar("lr", lr);
  if (!is_count(step.item()))
    throw ValueError(who + ": 'step' is " + format_number(step.item()) + ": must be a whole number >= 0");
  if (!(std::isfinite(lr.item()) && lr.item() >= 0))
    throw ValueError(who + ": 'lr' is " + format_number(lr.item()) + ": must be finite and >= 0");
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t k = 0; k < m_slots.size(); ++k) {
      const Tensor* t = slots[i][k];
      if (!t) continue;
      const std::string key = std::to_string(i) + "." + m_slots[k].name;
      if (m_slots[k].counter) {
        check_scalar(key, *t);
        if (!is_count(t->item()))
          throw ValueError(who + ": '" + key + "' is " + format_number(t->item()) +
                           ": must be a whole number >= 0");
        continue;
      }
      if (t->shape() != m_params[i].shape()) {
        const std::string saved = "'" + key + "'", param = "parameter " + std::to_string(i);
        throw_shape_error(who.c_str(), {{saved.c_str(), t->shape()}, {param.c_str(), m_params[i].shape()}},
                          "a state tensor must have its parameter's shape");
      }
      // A moment that no run of the update can produce: NaN or ±inf anywhere (also once converted to the
      // parameter's dtype: 1e300 is no float32), or a negative mean square (√v would be NaN at the next
      // step) — silently wrong numbers, so refused by element.
      auto scan = [&](const auto* v, auto as) {
        using To = decltype(as);
        for (std::size_t j = 0, m = t->numel(); j < m; ++j) {
          if (!std::isfinite(static_cast<To>(v[j])))
            throw ValueError(who + ": '" + key + "' holds " + format_number(v[j]) + " at element " + std::to_string(j) +
                             (std::isfinite(v[j]) ? ", past the range of parameter " + std::to_string(i) + "'s " +
                                                        dtype_name(m_params[i].dtype())
                                                  : std::string()) +
                             ": an optimizer's state must be finite (was it saved after a non-finite gradient?)");
          if (m_slots[k].non_negative && v[j] < 0)
            throw ValueError(who + ": '" + key + "' holds " + format_number(v[j]) + " at element " +
                             std::to_string(j) + ": a mean of squares is >= 0");
        }
      };
      const bool to_f32 = m_params[i].dtype() == Dtype::f32;
      if (t->dtype() == Dtype::f32)
        scan(t->data<float>(), float{});
      else if (to_f32)
        scan(t->data<double>(), float{});
      else
        scan(t->data<double>(), double{});
    }
  out.step = static_cast<std::int64_t>(step.item());
  out.lr = lr.item();
  return out;
}

void Optimizer::check_state_dict(const StateDict& state) const { check_state(state); }

void Optimizer::load_state_dict(const StateDict& state) {
  const CheckedState checked = check_state(state);
  const std::size_t n = m_params.size();
  // All checked: build the new state (copies, in the parameters' dtypes, as PyTorch casts), then swap it in.
  std::vector<std::vector<Tensor>> fresh(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::vector<const Tensor*>& slots = checked.slots[i];
    if (slots.empty() || !slots[0]) continue;  // all or none, checked above
    for (std::size_t k = 0; k < m_slots.size(); ++k) {
      if (m_slots[k].counter) {
        fresh[i].push_back(Tensor::scalar(slots[k]->item(), Dtype::f64));
      } else {
        Tensor copy = Tensor::zeros(m_params[i].shape(), m_params[i].dtype());
        copy.assign(*slots[k]);
        fresh[i].push_back(std::move(copy));
      }
    }
  }
  m_state.swap(fresh);
  m_step_count = checked.step;
  m_lr = checked.lr;
}

}  // namespace rwd
