#include "distributed.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <unordered_set>

#include "../core/error.hpp"
#include "checkpoint.hpp"

namespace rwd {

namespace {

double seconds_now() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

// "'1.weight' (4, 3) float32": one line of the same-model check.
std::string describe(const std::string& name, const Tensor& t) {
  return "'" + name + "' " + t.shape().str() + " " + dtype_name(t.dtype());
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at < s.size()) {
    const std::size_t end = s.find('\n', at);
    out.push_back(s.substr(at, end - at));
    if (end == std::string::npos) break;
    at = end + 1;
  }
  return out;
}

template <class T>
void pack(T* dst, const Tensor& g, double share) {
  const T* src = g.data<T>();
  const std::size_t n = g.numel();
  if (share == 1.0) {
    std::memcpy(dst, src, n * sizeof(T));
    return;
  }
  const T s = static_cast<T>(share);
  for (std::size_t j = 0; j < n; ++j) dst[j] = src[j] * s;
}

}  // namespace

// ---- DataParallel ----

DataParallel::DataParallel(Module& model, Optimizer& optimizer, Communicator& comm, ParallelOptions options)
    : m_comm(comm), m_model(model), m_options(options), m_params(optimizer.params()) {
  if (m_options.bucket_bytes == 0) throw ValueError("DataParallel: bucket_bytes must be at least 1");
  check_same_model(model, optimizer);
  broadcast_parameters();

  // Buckets, last parameter first: the sweep finishes the parameters used last in the forward pass
  // first, so the buckets fill (and start) in roughly the order the sweep makes them final.
  m_bucket_of.assign(m_params.size(), 0);
  m_shapes.assign(m_params.size(), Shape{});
  std::size_t bytes = 0;
  for (std::size_t k = m_params.size(); k-- > 0;) {
    const Tensor& p = m_params[k];
    if (!p.defined()) throw ValueError("DataParallel: optimizer parameter " + std::to_string(k) + " is undefined");
    if (m_index.count(p.impl_ptr().get()))
      throw ValueError("DataParallel: optimizer parameter " + std::to_string(k) + " appears twice");
    m_index[p.impl_ptr().get()] = k;
    m_shapes[k] = p.shape();
    if (m_buckets.empty() || m_buckets.back().dtype != p.dtype() || bytes >= m_options.bucket_bytes) {
      m_buckets.emplace_back();
      m_buckets.back().dtype = p.dtype();
      bytes = 0;
    }
    Bucket& b = m_buckets.back();
    b.params.push_back(k);
    b.offsets.push_back(b.elements);
    b.elements += p.numel();
    bytes += p.numel() * dtype_size(p.dtype());
    m_bucket_of[k] = m_buckets.size() - 1;
  }
  for (Bucket& b : m_buckets) {
    b.grads = b.elements;
    b.elements += b.params.size();  // one count per parameter: 1 where this rank has a gradient
    if (&b == &m_buckets.front()) b.elements += 1;  // the share: synchronize checks that they add up to 1
    b.storage.assign((b.elements * dtype_size(b.dtype) + sizeof(double) - 1) / sizeof(double), 0.0);
  }
  m_final.assign(m_params.size(), false);
}

DataParallel::~DataParallel() { abandon_step(); }

void DataParallel::abandon_step() {
  if (!m_in_step) return;
  // Begun, not synchronized (an exception unwinding this rank): the started sums write into the
  // buckets' storage when they arrive, and the other ranks' synchronize waits for this rank's sums.
  // Start the rest and wait, as synchronize would; the sums are dropped.
  m_hook.reset();  // (from any thread: a GradReadyHook leaves the list of the thread that registered it)
  m_in_step = false;
  try {
    for (Bucket& b : m_buckets) b.waiting = 0;
    start_ready();
    m_comm.wait_all();
  } catch (const std::exception& e) {
    // A sum may still be in flight into the storage, which the next step or the destructor reuses or
    // frees: end the job. (Alone, nothing is.)
    if (m_comm.size() > 1)
      m_comm.abort(std::string("DataParallel: a step was abandoned, and finishing its all-reduces failed: ") + e.what());
  }
}

double DataParallel::Bucket::at(std::size_t i) const {
  return dtype == Dtype::f32 ? reinterpret_cast<const float*>(storage.data())[i] : storage[i];
}

void DataParallel::check_optimizer(const Optimizer& optimizer, const std::string& who) const {
  const std::vector<Tensor>& theirs = optimizer.params();
  bool same = theirs.size() == m_params.size();
  for (std::size_t i = 0; same && i < theirs.size(); ++i) same = theirs[i].same(m_params[i]);
  if (!same)
    throw ValueError(who + " was made for another optimizer: it averages " + std::to_string(m_params.size()) +
                     " parameters, and this optimizer's " + std::to_string(theirs.size()) +
                     " are not those, in that order (they would never be averaged)");
}

void DataParallel::check_same_model(Module& model, const Optimizer& optimizer) {
  // Each rank lists what it has; rank 0's list goes to every rank, which finds its first difference.
  // The optimizer's parameters are named by their place in the model, so that two of one shape listed
  // in another order (their gradients would be summed crosswise) differ too.
  std::vector<std::string> mine;
  std::unordered_map<const void*, std::string> name_of;
  for (auto& [name, t] : model.state_dict()) {
    mine.push_back("parameter " + describe(name, t));
    name_of.emplace(t.impl_ptr().get(), name);
  }
  mine.push_back("optimizer " + optimizer.str());
  for (std::size_t i = 0; i < m_params.size(); ++i) {
    const Tensor& p = m_params[i];
    const auto it = p.defined() ? name_of.find(p.impl_ptr().get()) : name_of.end();
    mine.push_back("optimizer parameter " + std::to_string(i) + " " +
                   (!p.defined()           ? std::string("undefined")
                    : it != name_of.end() ? describe(it->second, p)
                                          : p.shape().str() + " " + dtype_name(p.dtype()) + ", not in the model"));
  }
  std::string joined;
  for (const std::string& s : mine) joined += s + "\n";
  const std::vector<std::string> root = split_lines(m_comm.broadcast(joined, 0));

  std::size_t first = std::numeric_limits<std::size_t>::max();
  for (std::size_t i = 0; i < std::max(mine.size(), root.size()); ++i)
    if (i >= mine.size() || i >= root.size() || mine[i] != root[i]) {
      first = i;
      break;
    }
  // The earliest difference over all ranks (then the lowest rank): key = entry · size + rank.
  const auto size = static_cast<std::int64_t>(m_comm.size());
  std::int64_t key = first == std::numeric_limits<std::size_t>::max() ? std::numeric_limits<std::int64_t>::max()
                                                                      : static_cast<std::int64_t>(first) * size + m_comm.rank();
  m_comm.allreduce_min(&key, 1);
  if (key == std::numeric_limits<std::int64_t>::max()) return;
  const auto entry = static_cast<std::size_t>(key / size);
  const int rank = static_cast<int>(key % size);
  const std::string theirs = m_comm.broadcast(
      entry < mine.size() ? mine[entry] : "no entry " + std::to_string(entry + 1) + " (" + std::to_string(mine.size()) + " in all)",
      rank);
  const std::string ours = entry < root.size() ? root[entry] : "no entry " + std::to_string(entry + 1) + " (" + std::to_string(root.size()) + " in all)";
  throw ValueError("DataParallel: the ranks' models differ at entry " + std::to_string(entry + 1) + ": rank 0 has " + ours +
                   ", rank " + std::to_string(rank) + " has " + theirs + " (every rank must build the same model)");
}

void DataParallel::broadcast_parameters() {
  // The model's tensors, then the optimizer's parameters that are not among them (each once).
  std::vector<Tensor> tensors;
  std::unordered_set<const void*> seen;
  for (auto& [name, t] : m_model.state_dict())
    if (seen.insert(t.impl_ptr().get()).second) tensors.push_back(t);
  for (const Tensor& p : m_params)
    if (p.defined() && seen.insert(p.impl_ptr().get()).second) tensors.push_back(p);
  for (Tensor& t : tensors) {
    void* data = t.dtype() == Dtype::f32 ? static_cast<void*>(t.data<float>()) : static_cast<void*>(t.data<double>());
    m_comm.broadcast(data, t.numel() * dtype_size(t.dtype()), 0);
  }
}

void DataParallel::begin_step(double share) {
  if (m_in_step) throw ValueError("DataParallel::begin_step: the previous step was not synchronized");
  // -1 is the default; any other value outside [0, 1] is a mistake in the caller's arithmetic.
  if (share == -1) share = 1.0 / m_comm.size();
  if (!(share >= 0 && share <= 1.0))
    throw ValueError("DataParallel::begin_step: share " + format_number(share) +
                     " is not in [0, 1] (this rank's part of the global batch; -1: 1/size)");
  // The buckets are laid out for the parameters as they were; Module::to converts them in place.
  for (std::size_t k = 0; k < m_params.size(); ++k) {
    const Tensor& p = m_params[k];
    const Dtype was = m_buckets[m_bucket_of[k]].dtype;
    if (p.dtype() != was || p.shape() != m_shapes[k])
      throw ValueError("DataParallel::begin_step: parameter " + std::to_string(k) + " is " + p.shape().str() + " " +
                       dtype_name(p.dtype()) + ", but was " + m_shapes[k].str() + " " + dtype_name(was) +
                       " when the DataParallel was made (convert the model before making it)");
  }
  m_share = share;
  m_thread = std::this_thread::get_id();
  m_changed = 0;
  for (Bucket& b : m_buckets) b.waiting = b.params.size();
  std::fill(m_final.begin(), m_final.end(), false);
  m_next = 0;
  m_first_start = m_last_start = 0;
  m_in_sweep = 0;
  m_in_step = true;
  if (m_options.overlap) m_hook.emplace([this](const Tensor& leaf) { on_ready(leaf); });
}

void DataParallel::on_ready(const Tensor& leaf) {
  const auto it = m_index.find(leaf.impl_ptr().get());
  if (it == m_index.end()) return;  // an input
  if (m_final[it->second]) {
    // A second sweep through it: harmless while its bucket waits, lost once its sum has started.
    if (m_bucket_of[it->second] < m_next && m_changed == 0) m_changed = it->second + 1;
    return;
  }
  m_final[it->second] = true;
  --m_buckets[m_bucket_of[it->second]].waiting;
  const std::size_t before = m_next;
  start_ready();
  m_in_sweep += m_next - before;
  m_comm.progress();  // MPI moves the started sums on only inside its calls
}

void DataParallel::start_ready() {
  // Strictly in order: every rank starts bucket k before bucket k+1, whatever order its sweep made
  // the gradients final in, so the collectives match across ranks.
  while (m_next < m_buckets.size() && m_buckets[m_next].waiting == 0) start(m_buckets[m_next++]);
}

void DataParallel::start(Bucket& b) {
  const double t = seconds_now();
  if (m_first_start == 0) m_first_start = t;
  m_last_start = t;
  const std::size_t counts = b.grads;
  const bool first = &b == &m_buckets.front();
  for (std::size_t j = 0; j < b.params.size(); ++j) {
    const Tensor g = m_params[b.params[j]].grad();
    const bool has = g.defined();
    if (b.dtype == Dtype::f32) {
      float* buf = reinterpret_cast<float*>(b.storage.data());
      if (has)
        pack(buf + b.offsets[j], g, m_share);
      else
        std::fill_n(buf + b.offsets[j], m_params[b.params[j]].numel(), 0.0f);
      buf[counts + j] = has ? 1.0f : 0.0f;
    } else {
      double* buf = b.storage.data();
      if (has)
        pack(buf + b.offsets[j], g, m_share);
      else
        std::fill_n(buf + b.offsets[j], m_params[b.params[j]].numel(), 0.0);
      buf[counts + j] = has ? 1.0 : 0.0;
    }
  }
  if (first) {
    const std::size_t at = counts + b.params.size();
    if (b.dtype == Dtype::f32)
      reinterpret_cast<float*>(b.storage.data())[at] = static_cast<float>(m_share);
    else
      b.storage[at] = m_share;
  }
  m_comm.start_allreduce_sum(b.storage.data(), b.elements, b.dtype);
}

void DataParallel::synchronize() {
  if (!m_in_step) throw ValueError("DataParallel::synchronize: no step was begun (call begin_step before backward)");
  if (std::this_thread::get_id() != m_thread)
    throw ValueError("DataParallel::synchronize: called on another thread than begin_step (the step's gradient-ready "
                     "hook is registered on that thread); the step is still open there");
  m_hook.reset();
  const double sweep_end = seconds_now();
  // Parameters the sweep did not reach (or every one, without overlap): their buckets start now.
  for (Bucket& b : m_buckets) b.waiting = 0;
  const bool any_before = m_first_start != 0;
  start_ready();
  m_comm.wait_all();
  const double end = seconds_now();
  m_in_step = false;

  // Every sum has arrived (no rank is left waiting): now the refusals. The shares' sum is the same on
  // every rank, so all of them refuse together.
  if (!m_buckets.empty()) {
    const Bucket& b = m_buckets.front();
    const double shares = b.at(b.grads + b.params.size());
    if (!(std::fabs(shares - 1.0) <= 1e-5))
      throw ValueError("DataParallel::synchronize: the ranks' shares add up to " + format_number(shares) +
                       ", not 1 (each rank's share is its part of the global batch)");
  }
  if (m_changed) {
    const Tensor& p = m_params[m_changed - 1];
    throw ValueError("DataParallel::synchronize: parameter " + std::to_string(m_changed - 1) + " " + p.shape().str() +
                     " got more gradient after its all-reduce had started (a second backward() since begin_step); "
                     "run one backward per step, or accumulate micro-batches without begin_step and begin the step "
                     "before the last backward");
  }

  for (Bucket& b : m_buckets) {
    const std::size_t counts = b.grads;
    for (std::size_t j = 0; j < b.params.size(); ++j) {
      Tensor& p = m_params[b.params[j]];
      if (b.at(counts + j) == 0) continue;  // no rank has a gradient for it: it stays without one, as in one process
      Tensor g = p.grad();
      if (!g.defined()) {
        p.set_grad(Tensor::zeros(p.shape(), p.dtype()));
        g = p.grad();
      }
      const std::size_t n = p.numel();
      if (b.dtype == Dtype::f32)
        std::memcpy(g.data<float>(), reinterpret_cast<const float*>(b.storage.data()) + b.offsets[j], n * sizeof(float));
      else
        std::memcpy(g.data<double>(), b.storage.data() + b.offsets[j], n * sizeof(double));
    }
  }

  m_stats.steps += 1;
  m_stats.buckets = m_buckets.size();
  m_stats.bytes = 0;
  for (const Bucket& b : m_buckets) m_stats.bytes += b.elements * dtype_size(b.dtype);
  m_stats.started_in_sweep += m_in_sweep;
  m_stats.exposed += end - sweep_end;
  m_stats.tail += end - m_last_start;
  m_stats.span += end - m_first_start;
  m_stats.sweep_overlapped += any_before ? sweep_end - m_first_start : 0.0;
}

// ---- DistributedSampler ----

DistributedSampler::DistributedSampler(std::size_t examples, std::size_t global_batch, std::uint32_t seed, int rank,
                                       int size, bool shuffle)
    : m_examples(examples), m_batch(global_batch), m_seed(seed), m_rank(rank), m_size(size), m_shuffle(shuffle),
      m_cache(std::make_shared<Cache>()) {
  if (examples == 0 || global_batch == 0)
    throw ValueError("DistributedSampler: " + std::string(examples == 0 ? "no examples" : "a global batch of 0"));
  if (size < 1 || rank < 0 || rank >= size)
    throw ValueError("DistributedSampler: rank " + std::to_string(rank) + " of " + std::to_string(size) + " does not exist");
  const auto ranks = static_cast<std::size_t>(size);
  const std::size_t last = examples - (batches() - 1) * global_batch;
  if (std::min(global_batch, last) < ranks)
    throw ValueError("DistributedSampler: " + std::to_string(examples) + " examples in global batches of " +
                     std::to_string(global_batch) + " leave a batch of " + std::to_string(std::min(global_batch, last)) +
                     ", fewer than the " + std::to_string(size) + " ranks (each needs at least one example)");
}

DistributedSampler::DistributedSampler(std::size_t examples, std::size_t global_batch, std::uint32_t seed,
                                       const Communicator& comm, bool shuffle)
    : DistributedSampler(examples, global_batch, seed, comm.rank(), comm.size(), shuffle) {}

struct DistributedSampler::Cache {
  std::mutex mutex;
  std::size_t epoch = 0;
  std::shared_ptr<const std::vector<std::size_t>> order;  // null until the first shuffled epoch
};

std::vector<std::size_t> DistributedSampler::take(std::size_t epoch, std::size_t begin, std::size_t end) const {
  std::vector<std::size_t> out;
  out.reserve(end - begin);
  if (!m_shuffle) {  // the order is 0 … examples − 1: nothing to keep
    for (std::size_t i = begin; i < end; ++i) out.push_back(i);
    return out;
  }
  // One thread builds an epoch's permutation while the others wait for it; a thread reading an
  // earlier epoch's keeps its own handle, so a new one never pulls the vector from under it.
  std::shared_ptr<const std::vector<std::size_t>> order;
  {
    std::lock_guard<std::mutex> lock(m_cache->mutex);
    if (!m_cache->order || m_cache->epoch != epoch) {
      auto o = std::make_shared<std::vector<std::size_t>>();
      try {
        o->resize(m_examples);
      } catch (const std::exception&) {  // bad_alloc, length_error: a count no memory holds
        throw ValueError("DistributedSampler: the permutation of " + std::to_string(m_examples) +
                         " examples does not fit in memory");
      }
      for (std::size_t i = 0; i < m_examples; ++i) (*o)[i] = i;
      // Fisher–Yates with rewind's MT19937 (the same permutation on every machine and for any number of
      // ranks): epoch e's stream is seeded from (seed, e).
      Generator gen(static_cast<std::uint32_t>(m_seed * 2654435761u + static_cast<std::uint32_t>(epoch) * 40503u + 1u));
      for (std::size_t i = m_examples; i-- > 1;) std::swap((*o)[i], (*o)[gen.integer(i + 1)]);
      m_cache->order = std::move(o);
      m_cache->epoch = epoch;
    }
    order = m_cache->order;
  }
  out.assign(order->begin() + static_cast<std::ptrdiff_t>(begin), order->begin() + static_cast<std::ptrdiff_t>(end));
  return out;
}

std::pair<std::size_t, std::size_t> DistributedSampler::part(std::size_t batch, int rank) const {
  if (batch >= batches())
    throw ValueError("DistributedSampler: batch " + std::to_string(batch) + " of " + std::to_string(batches()));
  const std::size_t begin = batch * m_batch, n = std::min(m_batch, m_examples - begin);
  const auto r = static_cast<std::size_t>(rank), s = static_cast<std::size_t>(m_size);
  // ⌊r·n/s⌋ without forming r·n (which overflows for n near SIZE_MAX): n = q·s + m, so it is
  // r·q + ⌊r·m/s⌋, with r·m < s².
  const auto cut = [&](std::size_t k) { return k * (n / s) + k * (n % s) / s; };
  return {begin + cut(r), begin + cut(r + 1)};
}

std::vector<std::size_t> DistributedSampler::global_batch(std::size_t epoch, std::size_t batch) const {
  const std::size_t b = part(batch, 0).first, e = part(batch, m_size - 1).second;
  return take(epoch, b, e);
}

std::vector<std::size_t> DistributedSampler::indices(std::size_t epoch, std::size_t batch) const {
  const auto [b, e] = part(batch, m_rank);
  return take(epoch, b, e);
}

double DistributedSampler::share(std::size_t, std::size_t batch) const {
  const auto [b, e] = part(batch, m_rank);
  const std::size_t begin = batch * m_batch, n = std::min(m_batch, m_examples - begin);
  return static_cast<double>(e - b) / static_cast<double>(n);
}

std::function<double(std::size_t, std::size_t)> DistributedSampler::share_fn() const {
  // A copy, not `this`: FitOptions may outlive the sampler. (A fresh one holds no permutation yet.)
  return [s = DistributedSampler(m_examples, m_batch, m_seed, m_rank, m_size, m_shuffle)](std::size_t epoch,
                                                                                          std::size_t batch) {
    return s.share(epoch, batch);
  };
}

// ---- checkpoints ----

void save_checkpoint(const std::string& path, const Module& model, const Optimizer& optimizer, Communicator& comm) {
  // Rank 0 writes; a failure there (a full disk) must reach the others, which would otherwise go on.
  std::int64_t ok = 1;
  std::string message;
  if (comm.is_root()) {
    try {
      save_checkpoint(path, model, optimizer);
    } catch (const std::exception& e) {
      ok = 0;
      message = e.what();
    }
  }
  comm.allreduce_min(&ok, 1);
  if (!ok) throw IOError(comm.broadcast(message, 0));
}

namespace {

// FNV-1a over the names, shapes and bytes of the tensors: equal states give equal fingerprints.
std::uint64_t fingerprint(const NamedTensors& tensors, std::uint64_t h = 14695981039346656037ull) {
  const auto add = [&h](const void* data, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) h = (h ^ static_cast<const unsigned char*>(data)[i]) * 1099511628211ull;
  };
  for (const auto& [name, t] : tensors) {
    add(name.data(), name.size() + 1);
    for (std::size_t d : t.shape()) add(&d, sizeof d);
    if (t.dtype() == Dtype::f32)
      add(t.data<float>(), t.numel() * sizeof(float));
    else
      add(t.data<double>(), t.numel() * sizeof(double));
  }
  return h;
}

}  // namespace

void load_checkpoint(const std::string& path, Module& model, Optimizer& optimizer, Communicator& comm) {
  NamedTensors model_before, optim_before;
  for (auto& [k, p] : model.state_dict()) model_before.emplace_back(k, p.detach());
  optim_before = optimizer.state_dict();
  std::string message;
  try {
    load_checkpoint(path, model, optimizer);
  } catch (const std::exception& e) {
    message = e.what();
  }
  // The lowest rank that failed speaks for all; the ones that loaded put their state back. `why` is
  // this rank's reason (if it failed), `what` says what went wrong.
  const auto refuse_if_any = [&](bool failed_here, const std::string& why, const std::string& what, bool loaded) {
    std::int64_t failed = failed_here ? comm.rank() : std::numeric_limits<std::int64_t>::max();
    comm.allreduce_min(&failed, 1);
    if (failed == std::numeric_limits<std::int64_t>::max()) return;
    if (loaded) {
      model.load_state_dict(model_before);
      // An optimizer state that went non-finite before the load is one load_state_dict refuses; that
      // rank keeps the loaded state rather than leave the broadcast below, which every rank must reach.
      try {
        optimizer.load_state_dict(optim_before);
      } catch (const ValueError&) {
      }
    }
    const std::string text = comm.broadcast(why, static_cast<int>(failed));
    throw ValueError("load_checkpoint: rank " + std::to_string(failed) + " of " + std::to_string(comm.size()) + " " +
                     what + " (no rank changed)" + (text.empty() ? "" : ": " + text));
  };
  refuse_if_any(!message.empty(), message, "could not load it", message.empty());
  // Every rank loaded: the same values? A path on each node's own disk reads a different file on each
  // (a stale copy), and the ranks would train apart without a word.
  std::uint64_t mine = fingerprint(optimizer.state_dict(), fingerprint(model.state_dict())), root = mine;
  comm.broadcast(&root, sizeof root, 0);
  refuse_if_any(mine != root, "",
                "loaded other values than rank 0 from " + path + " (it must be one file that every rank sees)", true);
}

}  // namespace rwd
