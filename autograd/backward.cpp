#include "backward.hpp"

#include <algorithm>
#include <limits>
#include <mutex>
#include <optional>

#include "../core/detail/impl.hpp"
#include "../core/threads.hpp"
#include "ops.hpp"
#include "../kernels/copy.hpp"
#include "../kernels/gemm.hpp"
#include "../kernels/packed.hpp"
#include "../kernels/output.hpp"
#include "../kernels/pool.hpp"
#include "../kernels/simd.hpp"

namespace rwd {

namespace {

// dst += src in place; same shape and dtype (checked by the caller).
void add_in_place(const Tensor& dst, const Tensor& src) {
  std::visit(
      [&](auto& d) {
        using T = typename std::decay_t<decltype(d)>::value_type;
        kernels::simd::binary(kernels::Binary::add, d.data(), detail::data<T>(src, "backward"), d.data(),
                              d.size());
      },
      dst.impl().value);
}

// dst[…, start:stop:step, …] += src along `axis`, in place (dst has the full shape).
void add_region_in_place(const Tensor& dst, const BackwardContext::Region& r) {
  const Shape full = dst.shape();
  const std::size_t ax = normalize_axis("slice", r.axis, full);
  const kernels::AxisSplit f = kernels::split_at(full, ax);
  const std::size_t count = r.g.shape()[ax];
  std::visit(
      [&](auto& d) {
        using T = typename std::decay_t<decltype(d)>::value_type;
        kernels::slice_add(d.data(), detail::data<T>(r.g, "slice"), f, r.start, count, r.step, 0, f.outer);
      },
      dst.impl().value);
}

// Sets grad mode for one scope and restores it, also when a backward function throws.
class GradModeScope {
 public:
  explicit GradModeScope(bool enabled) : m_previous(GradMode::enabled()) { GradMode::set_enabled(enabled); }
  ~GradModeScope() { GradMode::set_enabled(m_previous); }

 private:
  bool m_previous;
};

std::string describe(const Tensor& t) {
  std::string s = t.shape().str();
  if (!t.name().empty()) s = "'" + t.name() + "' " + s;
  return s;
}

// The panels of one group of gathered products hold at most this many bytes: a few steps of an
// LSTM's W_hh at batch 64 (6 at hidden 256, 3 at hidden 512), small next to a training step's
// activations, so gathering does not raise the peak memory; full, they run and start again.
constexpr std::size_t kDeferBytes = std::size_t(2) << 20;
// A product whose inner dimension is at least this long already runs near BLAS's peak: it runs where
// it is instead of being copied into a panel.
constexpr std::size_t kLongInner = 256;
// Products are gathered only when the BLAS runs on at least this many threads. On one, a per-step
// product (k = the batch) already runs at the kernel's full speed — lstm_medium measured the same sgemm
// kernel time either way — so gathering would only add its copies (+2.5% a step, +4 MB); the gain is
// with several threads, which split one long product better than T short ones.
constexpr int kGatherMinThreads = 2;

thread_local SweepStats t_stats;

}  // namespace

// A hook's function. `live` is cleared, under `calling`, when the hook is destroyed; a sweep calls the
// function only under `calling` and while `live`, so a destructor on another thread waits for a call
// in progress and no call starts after it. (Recursive: a hook may destroy itself, or register and
// destroy others, from inside its call; the sweep's copy of the list keeps the Entry alive meanwhile.)
struct GradReadyHook::Entry {
  GradReadyFn fn;
  std::recursive_mutex calling;
  bool live = true;
};

// One thread's hooks, in registration order. Shared by its registrations, so a hook destroyed on
// another thread, or after the thread ended, removes itself from the right list; `mutex` guards
// `hooks` against that other thread.
struct GradReadyHook::List {
  std::mutex mutex;
  std::vector<std::shared_ptr<GradReadyHook::Entry>> hooks;
};

namespace {

const std::shared_ptr<GradReadyHook::List>& ready_hooks() {
  thread_local const auto hooks = std::make_shared<GradReadyHook::List>();
  return hooks;
}

// A copy of this thread's hooks (a hook may register or remove hooks while the copy is walked).
std::vector<std::shared_ptr<GradReadyHook::Entry>> hooks_now() {
  GradReadyHook::List& list = *ready_hooks();
  const std::lock_guard<std::mutex> lock(list.mutex);
  return list.hooks;
}

bool any_hooks() {
  GradReadyHook::List& list = *ready_hooks();
  const std::lock_guard<std::mutex> lock(list.mutex);
  return !list.hooks.empty();
}

}  // namespace

// ---- gradient-ready hooks ----

GradReadyHook::GradReadyHook(GradReadyFn fn) : m_entry(std::make_shared<Entry>()), m_list(ready_hooks()) {
  if (!fn) throw ValueError("on_grad_ready: the hook is an empty function");
  m_entry->fn = std::move(fn);
  const std::lock_guard<std::mutex> lock(m_list->mutex);
  m_list->hooks.push_back(m_entry);
}

GradReadyHook::~GradReadyHook() {
  {
    const std::lock_guard<std::mutex> lock(m_list->mutex);
    auto& hooks = m_list->hooks;
    hooks.erase(std::find(hooks.begin(), hooks.end(), m_entry));  // there: only this object removes it
  }
  const std::lock_guard<std::recursive_mutex> wait(m_entry->calling);
  m_entry->live = false;
}

GradReadyHook on_grad_ready(GradReadyFn fn) { return GradReadyHook(std::move(fn)); }

SweepStats last_sweep_stats() { return t_stats; }

// Stamps every leaf that entries 0…last use with its first consumer. Scanning forward, leaves turn
// up in order of first use, so the list reversed is the order the sweep finishes them in.
void ReverseSweep::stamp_leaves(std::int64_t last) {
  m_hooks = true;
  if (m_tape)
    for (std::int64_t i = 0; i <= last; ++i)
      for (const Tensor& x : (*m_tape)[static_cast<std::size_t>(i)].inputs) {
        const detail::TensorImpl& p = x.impl();
        if ((p.tape == m_tape && p.node >= 0) || !p.requires_grad) continue;  // an intermediate, a constant
        if (m_ready_index.try_emplace(&p, m_ready.size()).second) m_ready.push_back({i, x});
      }
  std::reverse(m_ready.begin(), m_ready.end());
  for (std::size_t k = 0; k < m_ready.size(); ++k) m_ready_index[m_ready[k].leaf.impl_ptr().get()] = k;
}

// A leaf's .grad() was just added to. A leaf the tape does not use is the root itself: it is done
// when the sweep is.
void ReverseSweep::mark_received(const detail::TensorImpl* leaf) {
  auto [it, fresh] = m_ready_index.try_emplace(leaf, m_ready.size());
  if (fresh) {
    for (const Tensor& r : m_roots)
      if (r.impl_ptr().get() == leaf) m_ready.push_back({-1, r});
    if (m_ready.size() == it->second) {  // not found among the roots (cannot happen): nothing to fire
      m_ready_index.erase(it);
      return;
    }
  }
  m_ready[it->second].received = true;
}

// Every entry from `passed` on has been swept: the leaves first used there are final.
void ReverseSweep::fire_ready(std::int64_t passed) {
  if (m_hold_fire) return;  // an entry's beside fn still runs: its leaves are not final (run_beside)
  while (m_ready_next < m_ready.size() && m_ready[m_ready_next].first >= passed) {
    if (!m_ready[m_ready_next++].received) continue;
    // Every deferred product lands first: the hook's leaf may have some, and a hook may change a leaf
    // in place (an optimizer in the backward) that another leaf's deferred product reads.
    if (!m_groups.empty()) flush_products();
    const Tensor leaf = m_ready[m_ready_next - 1].leaf;
    // Copied: a hook may register or remove hooks. One removed meanwhile (by an earlier hook, or on
    // another thread) is no longer live, and is skipped.
    for (const auto& h : hooks_now()) {
      const std::lock_guard<std::recursive_mutex> lock(h->calling);
      if (h->live) h->fn(leaf);
    }
  }
}

ReverseSweep::ReverseSweep(const Tensor& root, const Tensor& seed, SweepOptions options)
    : ReverseSweep(std::vector<Tensor>{root}, std::vector<Tensor>{seed}, options, nullptr) {}

ReverseSweep::ReverseSweep(const std::vector<Tensor>& roots, const std::vector<Tensor>& seeds, SweepOptions options,
                           const std::vector<Tensor>* targets)
    : ReverseSweep(roots, seeds, options, targets, nullptr) {}

ReverseSweep::ReverseSweep(const std::vector<Tensor>& roots, const std::vector<Tensor>& seeds, SweepOptions options,
                           const std::vector<Tensor>* targets, detail::LeafGrads* leaf_grads)
    : m_options(options), m_targets(targets), m_leaf_grads(leaf_grads) {
  if (m_options.create_graph) m_options.retain = true;
  const char* who = targets ? "grad" : "backward";
  if (roots.empty()) throw TapeError(std::string(who) + ": no output to differentiate");
  if (!seeds.empty() && seeds.size() != roots.size())
    throw TapeError(std::string(who) + ": " + std::to_string(roots.size()) + " outputs but " +
                    std::to_string(seeds.size()) + " seeds");
  if (targets) {
    m_collect_only = true;
    m_target_grads.resize(targets->size());
    // A tensor listed twice collects at its first listing; result() gives it at every one.
    for (std::size_t i = 0; i < targets->size(); ++i) m_target_index.try_emplace((*targets)[i].impl_ptr().get(), i);
  }

  std::int64_t last = -1;
  for (const Tensor& root : roots) {
    const detail::TensorImpl& p = root.impl();
    if (!p.requires_grad && *p.released_op)
      throw TapeError(std::string(who) + ": the output " + root.shape().str() + " was produced by '" + p.released_op +
                      "' on a tape that has since been cleared (by an earlier backward()); its value is kept but "
                      "not its history — pass retain=true to the first backward to differentiate twice");
    if (!p.requires_grad)
      throw TapeError(std::string(who) + ": the output " + root.shape().str() +
                      " does not require a gradient: no tensor with requires_grad reaches it (or it was "
                      "computed under no_grad, or from a gradient computed without create_graph — to "
                      "differentiate a gradient, compute it with create_graph: SweepOptions{.create_graph = true})");
    if (p.tape) {
      if (m_tape && m_tape != p.tape) throw TapeError(std::string(who) + ": the outputs were recorded on different tapes");
      m_tape = p.tape;
      last = std::max(last, p.node);
    }
  }
  // Values no backward reads whose last handle went since their time step: freed before the adjoints
  // arrive (the peak). Not for a retained tape, which the teaching views may print afterwards.
  if (m_tape && !m_options.retain) m_tape->drop_unread(true);
  m_adjoints.resize(static_cast<std::size_t>(last + 1));
  m_owned.assign(m_adjoints.size(), false);
  if (!m_leaf_grads) t_stats = SweepStats{};  // (a branch's sweep counts into the sweep it is part of)
  m_defer = m_options.in_place && !m_options.keep_adjoints && !m_options.create_graph && !m_collect_only;
  m_deferred.retain = m_options.retain;
  m_roots = roots;
  if (!m_collect_only && !m_leaf_grads && any_hooks()) stamp_leaves(last);
  if (m_options.keep_adjoints && m_tape) {
    m_trace = std::make_shared<SweepTrace>();
    m_trace->entries.resize(m_adjoints.size());
    m_tape->set_last_trace(m_trace);
  }
  std::optional<CurrentTape> recording;  // create_graph records onto the swept tape
  if (m_options.create_graph && m_tape) recording.emplace(*m_tape);
  for (std::size_t r = 0; r < roots.size(); ++r) {
    const Tensor& root = roots[r];
    Tensor seed = seeds.empty() ? Tensor() : seeds[r];
    if (!seed.defined()) {
      if (root.numel() != 1)
        throw TapeError(std::string(who) + ": the output has shape " + root.shape().str() +
                        "; pass a seed gradient of that shape, or reduce the output to a scalar first");
      seed = Tensor::ones(root.shape(), root.dtype());
    } else {
      if (seed.shape() != root.shape())
        throw_shape_error(who, {{"output", root.shape()}, {"seed", seed.shape()}}, "the seed must have the output's shape");
      if (seed.dtype() != root.dtype())
        throw DtypeError(std::string(who) + ": the output is " + dtype_name(root.dtype()) + " but the seed is " +
                         dtype_name(seed.dtype()));
    }
    add_adjoint(root, seed);
  }
  m_next = last;
  if (m_tape) {  // last, once nothing above can throw: the destructor undoes it
    ++m_tape->m_sweeps;
    m_walking = true;
  }
}

void ReverseSweep::leave_tape() {
  if (!m_walking) return;
  m_walking = false;
  --m_tape->m_sweeps;
}

ReverseSweep::~ReverseSweep() {
  leave_tape();
  if (m_groups.empty()) return;
  try {  // a sweep left before its end: what it deferred still reaches .grad(), as it would have
    flush_products();
  } catch (...) {
  }
}

void ReverseSweep::add_adjoint(const Tensor& input, const Tensor& g) {
  detail::TensorImpl& p = input.impl();
  const bool graph = m_options.create_graph;
  if (p.tape == m_tape && p.node >= 0) {
    // An intermediate: its adjoint collects here until the sweep reaches its entry.
    const auto i = static_cast<std::size_t>(p.node);
    if (p.output > 0) {  // output 1… of a multi-output entry: collected apart, always out of place
      std::vector<Tensor>& more = m_more_adjoints[i];
      more.resize((*m_tape)[i].num_outputs() - 1);
      Tensor& slot = more[p.output - 1];
      GradModeScope mode(graph);
      slot = slot.defined() ? add(slot, g) : g;
      return;
    }
    Tensor& slot = m_adjoints[i];
    if (!slot.defined()) {
      slot = g;  // not ours yet: g may be shared with another input (add sends dz to both)
      m_owned[i] = false;
    } else if (!graph && m_owned[i] && detail::storage_owners(slot.impl()) == 1) {
      add_in_place(slot, g);
    } else {
      GradModeScope mode(graph);
      slot = add(slot, g);
      m_owned[i] = true;
    }
    return;
  }
  if (!p.requires_grad) return;
  if (m_collect_only) {
    auto it = m_target_index.find(&p);
    if (it == m_target_index.end()) return;
    Tensor& slot = m_target_grads[it->second];
    GradModeScope mode(graph);
    slot = slot.defined() ? add(slot, g) : (graph ? g : g.detach());
    return;
  }
  // A leaf: accumulate into .grad() — the `+=` that lasts until zero_grad().
  if (m_hooks) mark_received(&p);
  Tensor& acc = leaf_grad(p);
  if (graph) {
    GradModeScope mode(true);
    // A fresh tensor, never g itself: g may be the caller's seed or shared with another input (add
    // sends dz to both operands), and .grad() is later changed in place (zero_grad, a later +=).
    acc = acc.defined() ? add(acc, g)
                        : record(prim::clone, {g}, g.detach(), [](BackwardContext& c) { c.accumulate(0, c.grad_out()); });
    if (acc.impl().tape) acc.keep_on_clear();
  } else if (!acc.defined()) {
    acc = g.detach();
  } else if (acc.impl().tape || detail::storage_owners(acc.impl()) > 1) {  // history, or a view reads it
    GradModeScope mode(false);
    acc = add(acc, g);
  } else {
    add_in_place(acc, g);
  }
}

// The adjoint of `input` (an intermediate's, or a leaf's .grad()) made ready to be added into in
// place: private first (a copy when it may be shared with another input or carries history). Null
// where in-place adds do not apply (a step-through, the explain view, grad() targets); then the
// caller sends a full tensor. An empty slot stays empty for the caller to fill.
Tensor* ReverseSweep::writable_slot(const Tensor& input) {
  detail::TensorImpl& p = input.impl();
  const bool intermediate = p.tape == m_tape && p.node >= 0;
  if (!m_options.in_place || m_options.keep_adjoints || !(intermediate || (!m_collect_only && p.requires_grad)))
    return nullptr;
  if (intermediate && p.output > 0) {
    // A multi-output entry's later outputs (a checkpoint's states): made private by a copy, so a product
    // runs into it with β = 1 as into any adjoint — the same bits as without the checkpoint (a GEMM
    // whose inner dimension is cut into blocks adds each block into C: C + (P₁ + P₂) ≠ (C + P₁) + P₂).
    std::vector<Tensor>& more = m_more_adjoints[static_cast<std::size_t>(p.node)];
    more.resize((*m_tape)[static_cast<std::size_t>(p.node)].num_outputs() - 1);
    Tensor& slot = more[p.output - 1];
    if (slot.defined()) slot = slot.detach();
    return &slot;
  }
  if (!intermediate && m_hooks) mark_received(&p);
  const auto node = static_cast<std::size_t>(intermediate ? p.node : 0);
  Tensor& slot = intermediate ? m_adjoints[node] : leaf_grad(p);
  // (Private also means no view shares its storage: an add in place would change what the view reads.)
  if (slot.defined() &&
      ((intermediate && !m_owned[node]) || slot.impl().tape || detail::storage_owners(slot.impl()) > 1))
    slot = slot.detach();
  if (intermediate) m_owned[node] = true;
  return &slot;
}

// A region of an input's gradient (slice's backward), added into the adjoint in place.
void ReverseSweep::add_region(const Tensor& input, const BackwardContext::Region& r, Tensor& sent) {
  Tensor* slot = writable_slot(input);
  if (!slot) {
    GradModeScope mode(m_options.create_graph);
    Tensor full = unslice(r.g, input.shape(), r.axis, r.start, r.stop, r.step);
    sent = sent.defined() ? add(sent, full) : full;
    return;
  }
  if (!slot->defined()) *slot = kernels::zeros(input.shape(), input.dtype());
  add_region_in_place(*slot, r);
}

// A matrix product for an input's gradient (matmul's and affine's backward), run straight into the
// adjoint by GEMM with β = 1 (β = 0 into a fresh buffer when there is none yet).
void ReverseSweep::add_product(const Tensor& input, const BackwardContext::Product& q, Tensor& sent) {
  if (m_defer && defer_product(input, q)) return;
  Tensor* slot = writable_slot(input);
  if (!slot) {
    GradModeScope mode(false);  // not create_graph here (that records matmul in the backward itself)
    Tensor full = matmul(q.a, q.b, q.ta, q.tb);
    sent = sent.defined() ? add(sent, full) : full;
    return;
  }
  const bool fresh = !slot->defined();
  if (fresh) *slot = detail::empty_tensor(input.shape(), input.dtype());
  kernels::gemm_into(q.a, q.b, q.ta, q.tb, *slot, fresh ? 0.0 : 1.0);
}

// A product into a leaf's .grad() (2-D, short inner dimension), gathered with the others for that
// leaf and flags to run as one GEMM (see "Batched weight gradients", backward.hpp). False: run it now.
bool ReverseSweep::defer_product(const Tensor& input, const BackwardContext::Product& q) {
  const detail::TensorImpl& p = input.impl();
  if ((p.tape == m_tape && p.node >= 0) || !p.requires_grad || q.a.ndim() != 2) return false;
  // Neither a long product (already near BLAS's peak) nor a tiny one (a plain loop: no call to save).
  const std::size_t k = q.ta ? q.a.dim(0) : q.a.dim(1);
  if (k >= kLongInner || input.numel() * k <= kernels::kTinyProduct) return false;
  if (m_gather_threads < 0) m_gather_threads = get_num_threads();  // asked once a sweep, when it matters
  if (m_gather_threads < kGatherMinThreads) return false;
  ProductGroup* g = nullptr;
  for (ProductGroup& x : m_groups)
    if (x.leaf.impl_ptr().get() == &p && x.ta == q.ta && x.tb == q.tb) g = &x;
  if (!g) {
    const Shape s = input.shape();
    const std::size_t per_column = (s[0] + s[1]) * dtype_size(input.dtype());
    // Room for up to 16 such products, as the byte bound allows (at least this one).
    const std::size_t capacity = std::max(k, std::min(16 * k, kDeferBytes / per_column));
    g = &m_groups.emplace_back(ProductGroup{
        input, q.ta, q.tb, std::make_unique<kernels::ProductPanel>(s[0], s[1], capacity, q.ta, q.tb, input.dtype())});
  }
  if (g->panel->room() < k) flush_group(*g);
  if (g->panel->room() < k) return false;  // longer than the panel (a later product of a wider batch)
  if (m_hooks) mark_received(&p);
  g->panel->add(q.a, q.b);
  ++t_stats.products_deferred;
  return true;
}

// dW (+)= Σ op(aᵢ)·op(bᵢ) over a group's panels, as one GEMM into the leaf's .grad() (made private first).
void ReverseSweep::flush_group(ProductGroup& g) {
  if (g.panel->used() == 0) return;
  Tensor* slot = writable_slot(g.leaf);
  if (!slot) {  // the leaf no longer takes a gradient (a hook turned requires_grad off): dropped
    g.panel->run_into(detail::empty_tensor(g.leaf.shape(), g.leaf.dtype()), 0.0);
    return;
  }
  const bool fresh = !slot->defined();
  if (fresh) *slot = detail::empty_tensor(g.leaf.shape(), g.leaf.dtype());
  g.panel->run_into(*slot, fresh ? 0.0 : 1.0);
  ++t_stats.batched_gemms;
}

void ReverseSweep::flush_products() {
  for (ProductGroup& g : m_groups) flush_group(g);
  m_groups.clear();
}

bool ReverseSweep::reached(std::int64_t i) const {
  return m_adjoints[static_cast<std::size_t>(i)].defined() ||
         (!m_more_adjoints.empty() && m_more_adjoints.count(static_cast<std::size_t>(i)));
}

Tensor& ReverseSweep::leaf_grad(detail::TensorImpl& leaf) {
  if (!m_leaf_grads) return leaf.grad;
  detail::LeafGrad& g = (*m_leaf_grads)[&leaf];
  g.reached = true;
  return g.grad;
}

// Moves m_next to the next entry to sweep (inside a re-run, its own entries first; when they are done,
// on below its entry). True if there is one above `above`.
bool ReverseSweep::advance(std::int64_t above) {
  for (;;) {
    const std::int64_t floor = m_reruns.empty() ? 0 : static_cast<std::int64_t>(m_reruns.back().first);
    while (m_next >= floor && !reached(m_next)) --m_next;
    if (m_next >= floor || m_reruns.empty()) break;
    end_rerun();
  }
  return m_next > above;
}

bool ReverseSweep::step() {
  if (m_done) return false;
  advance(-1);
  if (m_hooks) fire_ready(m_next + 1);  // the entries skipped sent nothing: leaves first used there are done
  if (m_next < 0) {
    finish();
    return false;
  }
  process(static_cast<std::size_t>(m_next--));
  return true;
}

// Sweeps entry i: its backward function, then what it handed over (regions, products, a re-run, a fn
// to run beside).
void ReverseSweep::process(std::size_t i) {
  std::optional<CurrentTape> recording;  // create_graph records onto the swept tape
  if (m_options.create_graph) recording.emplace(*m_tape);
  const Node& node = (*m_tape)[i];
  Tensor dy = std::move(m_adjoints[i]);
  m_more_in.clear();
  if (node.num_outputs() > 1) {  // a multi-output entry: every output's adjoint, in order
    if (auto it = m_more_adjoints.find(i); it != m_more_adjoints.end()) {
      m_more_in = std::move(it->second);
      m_more_adjoints.erase(it);
    }
    m_more_in.resize(node.num_outputs() - 1);
  }
  if (m_collect_only) {
    auto it = m_target_index.find(node.output.impl_ptr().get());
    if (it != m_target_index.end()) m_target_grads[it->second] = dy;
    for (std::size_t k = 0; k < m_more_in.size(); ++k)
      if (m_more_in[k].defined())
        if (auto t = m_target_index.find(node.output_at(k + 1).impl_ptr().get()); t != m_target_index.end())
          m_target_grads[t->second] = m_more_in[k];
  }
  if (m_trace) m_trace->entries[i].adjoints = adjoints_in_of(dy);
  m_current = static_cast<std::int64_t>(i);
  m_adjoint_in = dy;
  m_adjoints_out.assign(node.inputs.size(), Tensor());
  m_deferred.clear();
  {
    GradModeScope mode(m_options.create_graph);
    if (node.num_outputs() == 1) {
      BackwardContext ctx(node, dy, m_adjoints_out, m_deferred);
      node.backward(ctx);
    } else {
      // Zeros for the outputs nothing used, so a backward can treat every output alike.
      std::vector<Tensor> dys = adjoints_in_of(dy);
      for (std::size_t k = 0; k < dys.size(); ++k)
        if (!dys[k].defined()) dys[k] = kernels::zeros(node.output_at(k).shape(), node.output_at(k).dtype());
      BackwardContext ctx(node, dys.data(), m_adjoints_out, m_deferred);
      node.backward(ctx);
    }
  }
  for (const BackwardContext::Region& r : m_deferred.regions) add_region(node.inputs[r.input], r, m_adjoints_out[r.input]);
  for (const BackwardContext::Product& q : m_deferred.products)
    add_product(node.inputs[q.input], q, m_adjoints_out[q.input]);
  m_deferred.regions.clear();
  m_deferred.products.clear();
  if (m_trace) m_trace->entries[i].sent = m_adjoints_out;
  for (std::size_t k = 0; k < node.inputs.size(); ++k)
    if (m_adjoints_out[k].defined()) add_adjoint(node.inputs[k], m_adjoints_out[k]);
  if (m_deferred.rerun || m_deferred.beside) [[unlikely]] {
    run_handed(i);
    return;
  }
  if (m_hooks) fire_ready(static_cast<std::int64_t>(i));
}

// Entry i handed the sweep a re-run or a fn to run beside (kept apart from process(): every entry of
// a tiny model's step passes the check, few take this).
void ReverseSweep::run_handed(std::size_t i) {
  BackwardContext::Rerun rerun = std::move(m_deferred.rerun);
  BackwardContext::Beside beside = std::move(m_deferred.beside);
  m_deferred.clear();
  if (rerun) {
    begin_rerun(i, rerun);  // its leaves are final only once the re-run entries are swept (end_rerun)
    return;
  }
  run_beside(i, beside);
  if (m_hooks) fire_ready(static_cast<std::int64_t>(i));
}

// Entry i handed over a fn that computes its inputs' adjoints (BackwardContext::beside): run it on
// another thread while this one sweeps the entries above the latest producer of those inputs — none
// of which sends anything fn reads or writes — then add what it computed. The adjoints land at that
// point of the sweep whether fn ran beside or, with no thread free, before the entries above it on
// this one: the bits do not depend on it. Gradient-ready hooks wait meanwhile (a leaf of fn's entry
// is final only once fn's adjoints are in), then fire for every leaf passed. Under create_graph, inside
// a checkpoint's re-run (whose entries, this one included, go when the re-run is swept), and in a
// step-through sweep (not in place: each step() one entry, as the teaching views show it), fn runs
// here and its adjoints land at once.
void ReverseSweep::run_beside(std::size_t i, const BackwardContext::Beside& fn) {
  const Node& node = (*m_tape)[i];
  std::vector<Tensor> grads;
  if (m_options.create_graph || !m_reruns.empty() || !m_options.in_place) {
    grads = fn();
  } else {
    std::int64_t producer = -1;  // the latest entry whose output fn's entry takes
    for (const Tensor& x : node.inputs)
      if (x.impl().tape == m_tape) producer = std::max(producer, x.impl().node);
    struct Hold {
      bool& flag;
      bool was = flag;
      ~Hold() { flag = was; }
    } hold{m_hold_fire};
    m_hold_fire = true;
    kernels::run_two(
        [&] {
          while (advance(producer)) process(static_cast<std::size_t>(m_next--));
        },
        [&] { grads = fn(); });
  }
  if (grads.size() != node.inputs.size())
    throw TapeError(std::string(node.op) + ": its backward's beside function returned " + std::to_string(grads.size()) +
                    " adjoints for " + std::to_string(node.inputs.size()) + " inputs");
  for (std::size_t k = 0; k < grads.size(); ++k) {
    if (!grads[k].defined() || !node.inputs[k].requires_grad()) continue;
    const Tensor& x = node.inputs[k];
    if (grads[k].shape() != x.shape() || grads[k].dtype() != x.dtype())
      throw TapeError(std::string(node.op) + ": its backward's beside function returned a " + grads[k].shape().str() +
                      " " + dtype_name(grads[k].dtype()) + " adjoint for input " + std::to_string(k) + ", which is " +
                      x.shape().str() + " " + dtype_name(x.dtype()));
    if (m_trace) m_trace->entries[i].sent[k] = grads[k];
    add_adjoint(x, grads[k]);
  }
  if (m_hooks && !m_hold_fire) fire_ready(m_next + 1);
}

// Entry i asked for its sub-computation to run again (BackwardContext::rerun): record it at the end of
// the tape, hand each output's adjoint to the tensor the re-run made for it, and sweep the new entries
// next. Each of them sends to the real inputs and parameters as it would have without the checkpoint,
// so the adjoints add up in the same order — bit for bit the same gradients.
void ReverseSweep::begin_rerun(std::size_t i, const BackwardContext::Rerun& rerun) {
  const Node& node = (*m_tape)[i];
  const std::size_t first = m_tape->size();
  std::vector<Tensor> outs;
  {
    CurrentTape on(*m_tape);
    GradModeScope mode(true);
    outs = rerun();
  }
  const std::size_t end = m_tape->size();
  m_adjoints.resize(end);
  m_owned.resize(end, false);
  if (m_trace) {
    m_trace->entries.resize(end);
    m_trace->entries[i].rerun_first = first;
    m_trace->entries[i].rerun_end = end;
  }
  m_reruns.push_back({first, i});
  auto fail = [&](const std::string& why) {
    throw TapeError(std::string(node.op) + ": re-run in the backward: " + why +
                    " — the function must compute the same from the same inputs");
  };
  if (outs.size() != node.num_outputs())
    fail("it gave " + std::to_string(outs.size()) + " outputs, the first run " + std::to_string(node.num_outputs()));
  const std::vector<Tensor> dys = adjoints_in();
  for (std::size_t k = 0; k < outs.size(); ++k) {
    const Tensor& was = node.output_at(k);
    const Tensor& now = outs[k];
    if (!now.defined() || now.shape() != was.shape() || now.dtype() != was.dtype())
      fail("output " + std::to_string(k) + " is " + (now.defined() ? now.shape().str() + " " + dtype_name(now.dtype()) : "undefined") +
           ", the first run's " + was.shape().str() + " " + dtype_name(was.dtype()));
    const detail::TensorImpl& p = now.impl();
    if (p.tape != m_tape || p.node < static_cast<std::int64_t>(first))
      fail("output " + std::to_string(k) + " was not computed by the re-run (it has no history there)");
    if (k < dys.size() && dys[k].defined()) add_adjoint(now, dys[k]);
  }
  m_next = static_cast<std::int64_t>(end) - 1;
}

// A re-run's entries are all swept: drop them (unless the tape is retained) and go on below its entry.
void ReverseSweep::end_rerun() {
  const Rerun r = m_reruns.back();
  m_reruns.pop_back();
  if (!m_options.retain) {
    m_tape->truncate(r.first);
    m_adjoints.resize(r.first);
    m_owned.resize(r.first);
    for (auto it = m_more_adjoints.begin(); it != m_more_adjoints.end();)
      it = it->first >= r.first ? m_more_adjoints.erase(it) : std::next(it);
  }
  m_next = static_cast<std::int64_t>(r.entry) - 1;
}

std::vector<Tensor> ReverseSweep::adjoints_in_of(const Tensor& dy) const {
  std::vector<Tensor> all{dy};
  all.insert(all.end(), m_more_in.begin(), m_more_in.end());
  return all;
}

std::vector<Tensor> ReverseSweep::adjoints_in() const { return adjoints_in_of(m_adjoint_in); }

void ReverseSweep::run() {
  // A weight's products are many in one sweep (W_hhᵀ·dGₜ at every step): each may pack it once.
  const kernels::PackScope packed_weights;
  while (step()) {
  }
}

void ReverseSweep::finish() {
  m_done = true;
  if (!m_groups.empty()) flush_products();
  if (m_hooks) fire_ready(std::numeric_limits<std::int64_t>::min());  // a leaf root, last
  m_adjoint_in = Tensor();
  m_more_in.clear();
  m_adjoints_out.clear();
  leave_tape();
  if (m_tape && !m_options.retain) {
    for (const Tensor& r : m_roots) r.keep_on_clear();  // the loss stays readable, as a constant
    m_tape->clear();
  }
}

Tensor ReverseSweep::pending_adjoint(std::int64_t i) const {
  if (i < 0 || static_cast<std::size_t>(i) >= m_adjoints.size()) return Tensor();
  return m_adjoints[static_cast<std::size_t>(i)];
}

Tape& ReverseSweep::tape() const {
  if (!m_tape) throw TapeError("ReverseSweep: the root is a leaf, so there is no tape to sweep");
  return *m_tape;
}

std::vector<Tensor> ReverseSweep::result() const {
  // Gradients with history (create_graph) belong to the caller: like .grad() after
  // backward(create_graph), they outlive the tape's next clear as constants.
  for (const Tensor& g : m_target_grads)
    if (g.defined() && g.impl().tape) g.keep_on_clear();
  // A target listed again takes its first listing's gradient (torch.autograd.grad(y, [x, x]) alike).
  std::vector<Tensor> out = m_target_grads;
  if (m_targets)
    for (std::size_t i = 0; i < out.size() && i < m_targets->size(); ++i)
      if (auto it = m_target_index.find((*m_targets)[i].impl_ptr().get()); it != m_target_index.end() && it->second != i)
        out[i] = out[it->second];
  return out;
}

void detail::sweep_into(const std::vector<Tensor>& roots, const std::vector<Tensor>& seeds, bool retain,
                        LeafGrads& leaf_grads) {
  ReverseSweep sweep(roots, seeds, SweepOptions{.retain = retain, .in_place = true}, nullptr, &leaf_grads);
  sweep.run();
}

void backward(const Tensor& root, const Tensor& seed, SweepOptions options) {
  options.in_place = true;
  ReverseSweep sweep(root, seed, options);
  sweep.run();
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& seeds, SweepOptions options, bool allow_unused) {
  for (std::size_t i = 0; i < inputs.size(); ++i)
    if (!inputs[i].defined()) throw TapeError("grad: input " + std::to_string(i) + " is an undefined tensor");
  for (std::size_t i = 0; i < inputs.size(); ++i)
    if (!inputs[i].requires_grad())
      throw TapeError("grad: input " + std::to_string(i) + " " + describe(inputs[i]) +
                      " does not require a gradient");
  options.in_place = true;
  ReverseSweep sweep(outputs, seeds, options, &inputs);
  sweep.run();
  std::vector<Tensor> grads = sweep.result();
  if (!allow_unused)
    for (std::size_t i = 0; i < grads.size(); ++i)
      if (!grads[i].defined())
        throw TapeError("grad: input " + std::to_string(i) + " " + describe(inputs[i]) +
                        " is not reachable from the outputs (pass allow_unused to get an undefined gradient)");
  return grads;
}

}  // namespace rwd
