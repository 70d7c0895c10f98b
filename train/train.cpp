#include "train.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include "../autograd/ops.hpp"
#include "../autograd/tape.hpp"
#include "../core/atomic_file.hpp"
#include "../nn/reset.hpp"
#include "../optim/clip.hpp"
#include "distributed.hpp"

namespace rwd {

namespace {

double now() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

std::string clock_text(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long s = std::lround(seconds);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

std::string number(double v, const char* format = "%.6g") {
  if (std::isnan(v)) return "nan";  // not "-nan": the sign of a NaN means nothing to a reader
  char buf[32];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

// clip_grad_norm that refuses non-finite gradients before touching them, naming where() they were
// found (the norm's first pass finds them, so a finite step pays nothing extra).
template <class Where>
double clip_norm_checked(const std::vector<Tensor>& params, double max_norm, const Where& where) {
  try {
    return clip_grad_norm(params, max_norm, 2.0, /*error_if_nonfinite=*/true);
  } catch (const NonFiniteGradError&) {
    check_finite_grads(params, where());  // the same element, worded for the loop (gradients untouched)
    throw;
  }
}

// The value of the loss a batch_loss or step_loss returned: one number, or an error naming where()
// before anything runs backward — a loss left unreduced (Reduction::none) would otherwise fail inside
// item() or backward() without saying which batch, and an undefined one as "this tensor is undefined".
template <class Where>
double loss_value(const Tensor& loss, const Where& where) {
  if (!loss.defined()) throw ValueError(where() + ": the loss is undefined (a default-constructed Tensor was returned)");
  if (loss.numel() != 1)
    throw ShapeError(where() + ": the loss is " + loss.shape().str() +
                     "; it must be one number: reduce it (mean, sum, or the loss's default reduction)");
  return loss.item();
}

// clip_norm: 0 turns clipping off, a positive value clips; a negative or NaN one (a typo) is refused
// rather than taken as "off".
void check_clip_norm(const char* who, double clip_norm) {
  if (!(clip_norm >= 0))
    throw ValueError(std::string(who) + ": clip_norm must be ≥ 0 (0: no clipping), got " + number(clip_norm));
}

}  // namespace

// ---- progress ----

Progress::Progress(std::ostream* out, std::size_t epochs, std::size_t batches, int tty, std::size_t first_epoch)
    : m_out(out), m_epochs(epochs), m_batches(batches), m_first(std::min(first_epoch, epochs)), m_start(now()) {
  if (tty >= 0)
    m_tty = tty != 0;
  else
    m_tty = (out == &std::cout && isatty(STDOUT_FILENO)) || (out == &std::cerr && isatty(STDERR_FILENO));
}

void Progress::update(std::size_t epoch, std::size_t batch, double mean_loss) {
  if (!m_out || !m_tty) return;
  const double t = now();
  const bool last = batch + 1 == m_batches;
  if (!last && t - m_last_draw < 0.1) return;  // redraw at most 10 times a second
  m_last_draw = t;
  const double done = static_cast<double>((epoch - std::min(epoch, m_first)) * m_batches + batch + 1);
  const double total = static_cast<double>((m_epochs - m_first) * m_batches);
  const double rate = done / std::max(t - m_start, 1e-9);
  *m_out << "\r\033[K" << "epoch " << epoch + 1 << "/" << m_epochs << "  batch " << batch + 1 << "/" << m_batches
         << "  loss " << number(mean_loss, "%.4g") << "  " << number(rate, "%.1f") << " batch/s  ETA "
         << clock_text((total - done) / rate) << std::flush;
}

void Progress::epoch_done(const EpochRecord& r) {
  if (!m_out) return;
  if (m_tty) *m_out << "\r\033[K";
  const double elapsed = now() - m_start;
  // Per epoch of this run (a resumed run started at m_first), times the epochs left.
  const std::size_t run = r.epoch > m_first ? r.epoch - m_first : 1, left = m_epochs > r.epoch ? m_epochs - r.epoch : 0;
  const double eta = elapsed / static_cast<double>(run) * static_cast<double>(left);
  *m_out << "epoch " << r.epoch << "/" << m_epochs << "  loss " << number(r.loss, "%.4g");
  if (!std::isnan(r.val_loss)) *m_out << "  val_loss " << number(r.val_loss, "%.4g");
  for (const auto& [name, value] : r.metrics) *m_out << "  " << name << " " << number(value, "%.4g");
  *m_out << "  " << number(static_cast<double>(r.batches) / std::max(r.seconds, 1e-9), "%.1f") << " batch/s  "
         << number(r.seconds, "%.2f") << " s  ETA " << clock_text(eta) << "\n"
         << std::flush;
}

// ---- history ----

double EpochRecord::metric(const std::string& name) const {
  for (const auto& [n, v] : metrics)
    if (n == name) return v;
  throw ValueError("EpochRecord: no metric '" + name + "' at epoch " + std::to_string(epoch));
}

namespace {
// The columns History::csv() writes before the metrics' (which may not take these names).
constexpr const char* kColumns[] = {"epoch", "loss", "val_loss", "grad_norm", "lr", "seconds", "batches"};
}  // namespace

std::string History::csv() const {
  std::string s;
  for (const char* c : kColumns) {
    if (!s.empty()) s += ',';
    s += c;
  }
  if (!epochs.empty())
    for (const auto& m : epochs.front().metrics) {
      s += ',';
      s += m.first;
    }
  s += "\n";
  for (const EpochRecord& r : epochs) {
    s += std::to_string(r.epoch) + "," + number(r.loss, "%.9g") + "," + number(r.val_loss, "%.9g") + "," +
         number(r.grad_norm, "%.9g") + "," + number(r.lr, "%.9g") + "," + number(r.seconds, "%.6f") + "," +
         std::to_string(r.batches);
    for (const auto& m : r.metrics) {
      s += ',';
      s += number(m.second, "%.9g");
    }
    s += "\n";
  }
  return s;
}

double History::final_loss() const {
  if (epochs.empty())
    throw ValueError("History::final_loss: no epoch ran (the history is empty: fit ran from initial_epoch to "
                     "epochs with nothing between), so there is no final loss");
  return epochs.back().loss;
}

void History::write_csv(const std::string& path) const {
  if (rank == 0) write_file_atomic(path, csv());
}

// write_file_atomic is core/atomic_file.cpp's: one atomic writer for .npz files and text alike.

// ---- fit ----

namespace {

// Under data parallelism an exception on one rank would leave the others in their next all-reduce
// forever: it ends the whole job instead, with its message. One process rethrows as always.
template <class F>
auto ending_the_job_on_error(DataParallel* parallel, F&& body) {
  if (!parallel || parallel->comm().size() == 1) return body();
  try {
    return body();
  } catch (const std::exception& e) {
    parallel->comm().abort(e.what());
  }
  std::abort();  // (not reached: abort() ends every rank)
}

// loss.backward() as one step of `parallel` (when there is one): begin_step, the sweep, synchronize. A
// sweep that throws abandons the step first, so the DataParallel can begin the next one: in one
// process the caller may catch the error and train on; with several ranks the other ranks' synchronize
// gets this rank's sums (no rank is left in a collective) and ending_the_job_on_error then ends the job.
void backward_step(DataParallel* parallel, const Tensor& loss, double share = -1) {
  if (!parallel) return loss.backward();
  parallel->begin_step(share);
  try {
    loss.backward();
  } catch (...) {
    parallel->abandon_step();
    throw;
  }
  parallel->synchronize();  // every rank now holds the global batch's gradient
}

// Under data parallelism every rank must run the same steps: one with more would wait in its extra
// all-reduces forever. Each count's smallest and largest value over the ranks (one all-reduce); a
// difference is refused on every rank alike, before the first step.
void check_ranks_agree(DataParallel* parallel, const char* who,
                       std::initializer_list<std::pair<const char*, std::size_t>> counts) {
  if (!parallel || parallel->comm().size() == 1) return;
  // n ↦ n XOR 2⁶³ maps [0, 2⁶⁴) onto the int64 range in order; ~ reverses the order without overflow,
  // so one min-reduction gives each count's min and (from ~) its max.
  constexpr std::uint64_t flip = std::uint64_t{1} << 63;
  std::vector<std::int64_t> v;
  for (const auto& [name, n] : counts) {
    const auto key = static_cast<std::int64_t>(static_cast<std::uint64_t>(n) ^ flip);
    v.insert(v.end(), {key, ~key});
  }
  parallel->comm().allreduce_min(v.data(), v.size());
  std::size_t i = 0;
  for (const auto& [name, n] : counts) {
    const std::uint64_t lo = static_cast<std::uint64_t>(v[2 * i]) ^ flip, hi = static_cast<std::uint64_t>(~v[2 * i + 1]) ^ flip;
    ++i;
    if (lo != hi)
      throw ValueError(std::string(who) + ": the ranks disagree on " + name + " (" + std::to_string(lo) + " to " +
                       std::to_string(hi) + "): every rank must run the same steps, or the ones with more would wait "
                       "for the others forever");
  }
}

// fit's loop (fit() below checks its arguments and runs this).
History fit_loop(Optimizer& optimizer, std::size_t batches,
                 const std::function<Tensor(std::size_t epoch, std::size_t batch)>& batch_loss, const FitOptions& options) {
  DataParallel* const parallel = options.parallel;
  const bool root = !parallel || parallel->comm().is_root();
  History history;
  history.rank = parallel ? parallel->comm().rank() : 0;
  Progress progress(root ? options.out : nullptr, options.epochs, batches, options.tty, options.initial_epoch);
  const EarlyStopping& stop = options.early_stopping;
  double best = std::nan("");
  std::size_t waited = 0;
  std::vector<Tensor> best_params;  // copies, for restore_best
  for (std::size_t epoch = options.initial_epoch; epoch < options.epochs; ++epoch) {
    const double start = now();
    EpochRecord r;
    r.epoch = epoch + 1;
    r.lr = optimizer.lr();
    r.batches = batches;
    double sum = 0, norms = 0, weighted = 0;
    for (std::size_t b = 0; b < batches; ++b) {
      optimizer.zero_grad();
      const auto where = [&] { return "fit: epoch " + std::to_string(epoch + 1) + ", batch " + std::to_string(b + 1); };
      Tensor loss = batch_loss(epoch, b);
      const double value = loss_value(loss, where);
      if (!std::isfinite(value))
        throw ValueError("fit: the loss is " + number(value) + " at epoch " + std::to_string(epoch + 1) + ", batch " +
                         std::to_string(b + 1));
      const double share = !parallel ? 1.0 : options.share ? options.share(epoch, b) : 1.0 / parallel->comm().size();
      backward_step(parallel, loss, share);
      weighted += share * value;
      // A finite loss can still have NaN or ±inf gradients (a log or sqrt at 0, an overflow inside);
      // one step would write them into every weight and the optimizer's state, so stop before it.
      // With clipping the norm's own pass finds them; without, one read of the gradients.
      if (options.clip_norm > 0)
        norms += clip_norm_checked(optimizer.params(), options.clip_norm, where);
      else
        check_finite_grads(optimizer.params(), where());
      optimizer.step();
      sum += value;
      progress.update(epoch, b, sum / static_cast<double>(b + 1));
    }
    // The global batches' mean loss: Σ_b Σ_r share_r·loss_r / batches (one sum over the ranks per epoch).
    r.loss = (parallel ? parallel->comm().sum(weighted) : sum) / static_cast<double>(batches);
    r.grad_norm = options.clip_norm > 0 ? norms / static_cast<double>(batches) : std::nan("");
    r.seconds = now() - start;  // training only: validation is not part of the batch rate
    r.val_loss = std::nan("");
    if (options.validate) {
      NoGradGuard no_grad;
      r.val_loss = options.validate();
      if (parallel) r.val_loss = parallel->comm().mean(r.val_loss);  // the mean of the ranks' values
    }
    for (const Metric& m : options.metrics) {
      NoGradGuard no_grad;
      double v = m.fn();
      if (parallel) v = parallel->comm().mean(v);
      r.metrics.emplace_back(m.name, v);
    }
    history.epochs.push_back(r);
    progress.epoch_done(r);
    if (options.on_epoch_end) options.on_epoch_end(r);
    if (!stop.monitor.empty()) {
      // The same figure on every rank (global loss, averaged validation and metrics): all stop together.
      const double v = stop.monitor == "loss"       ? r.loss
                       : stop.monitor == "val_loss" ? r.val_loss
                                                    : r.metric(std::string(stop.monitor));
      const bool better = std::isnan(best) ? !std::isnan(v)
                                           : (stop.maximize ? v > best + stop.min_delta : v < best - stop.min_delta);
      if (better) {
        best = v;
        waited = 0;
        history.best_epoch = r.epoch;
        if (stop.restore_best) {
          best_params.clear();
          for (const Tensor& p : optimizer.params()) best_params.push_back(p.detach());  // a copy of the values
        }
      } else if (++waited >= std::max<std::size_t>(stop.patience, 1)) {
        history.stopped_early = epoch + 1 < options.epochs;
        break;
      }
    }
  }
  if (stop.restore_best && !best_params.empty() && history.best_epoch != history.epochs.back().epoch) {
    const std::vector<Tensor>& params = optimizer.params();
    for (std::size_t i = 0; i < params.size(); ++i) {
      Tensor p = params[i];  // a handle on the same parameter
      p.assign(best_params[i]);
    }
  }
  return history;
}

// The options fit() refuses before it starts.
void check_fit_options(const FitOptions& o) {
  check_clip_norm("fit", o.clip_norm);
  if (o.initial_epoch > o.epochs)
    throw ValueError("fit: initial_epoch (" + std::to_string(o.initial_epoch) + ") is past epochs (" +
                     std::to_string(o.epochs) + "), the epoch to end before");
  for (std::size_t i = 0; i < o.metrics.size(); ++i) {
    const std::string& n = o.metrics[i].name;
    if (n.empty() || n.find_first_of(",\"\n\r") != std::string::npos)
      throw ValueError("fit: metric name '" + n + "' cannot be a CSV column (empty, or has ',', '\"' or a newline)");
    for (const char* b : kColumns)
      if (n == b) throw ValueError("fit: metric name '" + n + "' is a column fit already writes");
    for (std::size_t j = 0; j < i; ++j)
      if (o.metrics[j].name == n) throw ValueError("fit: metric '" + n + "' is given twice");
    if (!o.metrics[i].fn) throw ValueError("fit: metric '" + n + "' has no function");
  }
  const std::string m(o.early_stopping.monitor);
  if (m.empty() && o.early_stopping.restore_best)
    throw ValueError("fit: early_stopping.restore_best needs early_stopping.monitor ('loss', 'val_loss' or a metric): "
                     "without a monitored figure no epoch is best, and nothing would be restored");
  if (m.empty()) return;
  if (m == "val_loss" && !o.validate)
    throw ValueError("fit: early_stopping monitors 'val_loss', but there is no validate function");
  bool known = m == "loss" || m == "val_loss";
  for (const Metric& x : o.metrics) known = known || x.name == m;
  if (!known) throw ValueError("fit: early_stopping monitors '" + m + "', which is neither loss, val_loss nor a metric");
  if (!(o.early_stopping.min_delta >= 0))
    throw ValueError("fit: early_stopping.min_delta must be ≥ 0, got " + number(o.early_stopping.min_delta));
}

// train_truncated's loop, k1 and k2 checked.
double truncated_loop(Module& model, Optimizer& optimizer, std::size_t steps,
                      const std::function<Tensor(std::size_t t)>& step_loss, const TruncatedOptions& options,
                      std::size_t k1, std::size_t k2) {
  DataParallel* const parallel = options.parallel;
  double total = 0;
  for (std::size_t start = 0; start < steps; start += k1) {
    optimizer.zero_grad();
    Tensor window;
    for (std::size_t t = start; t < std::min(start + k1, steps); ++t) {
      if (t > start && (t - start) % k2 == 0) detach_state(model);  // the gradient horizon
      Tensor l = step_loss(t);
      total += loss_value(l, [&] { return "train_truncated: step " + std::to_string(t + 1); });
      window = window.defined() ? window + l : l;
    }
    backward_step(parallel, window);
    const auto where = [&] {
      return "train_truncated: steps " + std::to_string(start + 1) + "-" + std::to_string(std::min(start + k1, steps));
    };
    if (options.clip_norm > 0)
      clip_norm_checked(optimizer.params(), options.clip_norm, where);
    else
      check_finite_grads(optimizer.params(), where());
    optimizer.step();
    detach_state(model);  // the next window starts from this state's value, without its history
  }
  const double mean = total / static_cast<double>(std::max<std::size_t>(steps, 1));
  return parallel ? parallel->comm().mean(mean) : mean;
}

// TBPTT(k1, k2) with k2 > k1 (Williams & Peng's BPTT(h; h') with h = k2, h' = k1): every k1 steps,
// the losses of those k1 steps are backpropagated through the last k2 steps. The tape cannot hold
// steps across an update (their values would meet the updated weights), so each window rewinds the
// model to the state saved before step end − k2 and runs the k2 steps again under recording — k2/k1
// times the forward work, and the memory of k2 steps. The states saved before each step are the
// ones of the first pass through it, so the sequence is run forward once, continuously, as in the
// online algorithm; only the recomputations see the weights of their window.
double truncated_rewinding_loop(Module& model, Optimizer& optimizer, std::size_t steps,
                                const std::function<Tensor(std::size_t t)>& step_loss, const TruncatedOptions& options,
                                std::size_t k1, std::size_t k2) {
  DataParallel* const parallel = options.parallel;
  double total = 0;
  std::map<std::size_t, std::vector<std::vector<Tensor>>> saved;  // step s → the states before it
  saved[0] = save_states(model);
  for (std::size_t start = 0; start < steps; start += k1) {
    const std::size_t end = std::min(start + k1, steps);
    const std::size_t from = end > k2 ? end - k2 : 0;  // the gradient horizon: back to step `from`
    optimizer.zero_grad();
    restore_states(model, saved.at(from));
    Tensor window;
    for (std::size_t t = from; t < end; ++t) {
      if (t >= start) saved.try_emplace(t, save_states(model));  // first pass through step t
      Tensor l = step_loss(t);
      const double value = loss_value(l, [&] { return "train_truncated: step " + std::to_string(t + 1); });
      if (t < start) continue;  // counted in its own window; here only the way back to it
      total += value;
      window = window.defined() ? window + l : l;
    }
    const std::size_t next_end = std::min(end + k1, steps);  // what the next window rewinds to
    saved.erase(saved.begin(), saved.lower_bound(next_end > k2 ? next_end - k2 : 0));
    backward_step(parallel, window);
    const auto where = [&] {
      return "train_truncated: steps " + std::to_string(start + 1) + "-" + std::to_string(end);
    };
    if (options.clip_norm > 0)
      clip_norm_checked(optimizer.params(), options.clip_norm, where);
    else
      check_finite_grads(optimizer.params(), where());
    optimizer.step();
    detach_state(model);
  }
  const double mean = total / static_cast<double>(std::max<std::size_t>(steps, 1));
  return parallel ? parallel->comm().mean(mean) : mean;
}

}  // namespace

History fit(Optimizer& optimizer, std::size_t batches,
            const std::function<Tensor(std::size_t epoch, std::size_t batch)>& batch_loss, const FitOptions& options) {
  if (batches == 0) throw ValueError("fit: no batches");
  check_fit_options(options);
  check_ranks_agree(options.parallel, "fit",
                    {{"batches", batches}, {"epochs", options.epochs}, {"initial_epoch", options.initial_epoch}});
  return ending_the_job_on_error(options.parallel, [&] {
    if (options.parallel) options.parallel->check_optimizer(optimizer, "fit: FitOptions::parallel");
    return fit_loop(optimizer, batches, batch_loss, options);
  });
}

double train_truncated(Module& model, Optimizer& optimizer, std::size_t steps,
                       const std::function<Tensor(std::size_t t)>& step_loss, const TruncatedOptions& options) {
  const std::size_t k1 = options.k1, k2 = options.k2 ? options.k2 : options.k1;
  if (k1 == 0) throw ValueError("train_truncated: k1 must be at least 1");
  check_clip_norm("train_truncated", options.clip_norm);
  check_ranks_agree(options.parallel, "train_truncated", {{"steps", steps}, {"k1", k1}, {"k2", k2}});
  return ending_the_job_on_error(options.parallel, [&] {
    if (options.parallel) options.parallel->check_optimizer(optimizer, "train_truncated: TruncatedOptions::parallel");
    return k2 > k1 ? truncated_rewinding_loop(model, optimizer, steps, step_loss, options, k1, k2)
                   : truncated_loop(model, optimizer, steps, step_loss, options, k1, k2);
  });
}

}  // namespace rwd
