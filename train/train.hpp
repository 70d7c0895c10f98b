// rewind/train/train.hpp — the training loop as a helper (Flux's train!, Keras' fit).
//
// The classic loop needs no helper:
//     opt.zero_grad();  Tensor loss = loss_fn(model(x), y);  loss.backward();  opt.step();
// fit() runs that loop for you over epochs and batches, with a progress line, optional gradient
// clipping and validation, and returns the history:
//
//     History h = fit(opt, n_batches, [&](std::size_t epoch, std::size_t b) {
//                       reset(model);                          // independent sequences
//                       return mse_loss(model(xs[b]), ys[b]);  // the loss of batch b
//                     },
//                     {.epochs = 20, .validate = [&] { return val_loss(); }});
//     h.write_csv("history.csv");
//
// On a terminal the progress line redraws in place (epoch, batch, loss, batches/s, ETA); otherwise
// one plain line per epoch is printed, so logs stay readable.
#pragma once

#include <cstddef>
#include <functional>
#include <iosfwd>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../core/atomic_file.hpp"  // write_file_atomic (declared here before it moved to core/)
#include "../core/tensor.hpp"
#include "../nn/module.hpp"
#include "../optim/optimizer.hpp"

namespace rwd {

class DataParallel;  // train/distributed.hpp

/// One epoch of the history.
struct EpochRecord {
  std::size_t epoch = 0;     ///< 1-based
  double loss = 0;           ///< mean of the batches' losses
  double val_loss = 0;       ///< NaN when there is no validation
  double grad_norm = 0;      ///< mean global gradient norm before clipping (NaN without clipping)
  double lr = 0;             ///< learning rate during the epoch
  double seconds = 0;        ///< wall time of the epoch's training (validation excluded)
  std::size_t batches = 0;   ///< batches trained in the epoch
  /// FitOptions::metrics' values after the epoch, by name, in their order.
  std::vector<std::pair<std::string, double>> metrics;
  /// The value of metric `name` (ValueError if there is none).
  double metric(const std::string& name) const;
};

/// A figure computed after each epoch (with grad mode off), recorded, printed and written to the CSV
/// next to the loss: accuracy, a validation metric, a perplexity.
struct Metric {
  std::string name;             ///< a CSV column: not empty, no ',', '"' or newline, not a built-in column
  std::function<double()> fn;   ///< its value after the epoch (under data parallelism: averaged over the ranks)
};

/// Stop training when a monitored figure has stopped improving (Keras' EarlyStopping).
struct EarlyStopping {
  /// "val_loss", "loss" or a metric's name; empty: never stop early. (A view: the text it names must
  /// outlive the fit() call — a literal, or a metric's name. Not a std::string, which in this nested
  /// aggregate sets off a false -Wmaybe-uninitialized in GCC 12 wherever FitOptions is initialized.)
  std::string_view monitor;
  std::size_t patience = 0;     ///< epochs in a row without improvement that stop training (0: the first)
  double min_delta = 0;         ///< an improvement must beat the best by more than this
  bool maximize = false;        ///< larger is better (accuracy); the default, smaller (a loss)
  /// When training ends, put back the parameters of the best epoch (Keras' restore_best_weights);
  /// needs a monitor (fit refuses it without one: no epoch would ever be the best).
  bool restore_best = false;
};

/// What fit() does besides the loop.
struct FitOptions {
  /// The epoch to end before: fit runs epochs initial_epoch … epochs − 1 (0-based, as batch_loss sees
  /// them; the records number them from 1), so a resumed run continues the count (Keras' fit).
  std::size_t epochs = 1;
  /// The epoch to start at (a run resumed from a checkpoint taken after initial_epoch epochs).
  std::size_t initial_epoch = 0;
  /// Figures recorded after each epoch beside the loss (printed, in the CSV).
  std::vector<Metric> metrics = {};
  /// Stop before `epochs` when a figure stops improving.
  EarlyStopping early_stopping = {};
  /// Clip the gradients' global 2-norm to this before each step (0: no clipping).
  double clip_norm = 0.0;
  /// Called after each epoch, with grad mode off; its value is recorded as val_loss.
  std::function<double()> validate = {};
  /// Called after each epoch with its record (e.g. to step a learning-rate schedule or sample text).
  std::function<void(const EpochRecord&)> on_epoch_end = {};
  /// Progress output (nullptr: silent). A terminal gets a redrawn line, anything else plain lines.
  std::ostream* out = nullptr;
  /// Treat `out` as a terminal (default: detected for std::cout / std::cerr).
  int tty = -1;
  /// Data-parallel training (train/distributed.hpp): gradients averaged over the ranks before each
  /// step; the history's losses are the global batches' (the same on every rank), validation the mean
  /// of the ranks' values; only rank 0 prints and writes the CSV; an exception on any rank ends the
  /// whole job with its message (MPI_Abort), since the others would wait for it forever; in one process
  /// it reaches the caller with the DataParallel ready for the next step (a backward() that threw
  /// abandons its step: DataParallel::abandon_step). It must be
  /// made for fit's optimizer (the same parameters, in order), and every rank must pass the same
  /// batches, epochs and initial_epoch (checked on every rank before the first step): ValueError otherwise.
  DataParallel* parallel = nullptr;
  /// With `parallel`: this rank's share of global batch `batch` of `epoch` (DistributedSampler::share_fn);
  /// empty: 1/size.
  std::function<double(std::size_t epoch, std::size_t batch)> share = {};
};

/// The per-epoch records fit() returns.
struct History {
  std::vector<EpochRecord> epochs;  ///< one record per epoch run, in order (numbered from initial_epoch + 1)
  /// The rank that made it (fit with FitOptions::parallel): write_csv writes on rank 0 only.
  int rank = 0;
  /// "epoch,loss,val_loss,grad_norm,lr,seconds,batches" (then the metrics' names) and one row per epoch.
  std::string csv() const;
  /// Writes csv() to `path` atomically (temp file + rename); does nothing on a rank other than 0.
  void write_csv(const std::string& path) const;
  /// The last epoch's loss; ValueError when no epoch ran (an empty history has no loss, and 0 would
  /// read as a perfect one).
  double final_loss() const;
  /// With FitOptions::early_stopping: the epoch (1-based) whose figure was best, 0 if none was
  /// recorded.
  std::size_t best_epoch = 0;
  /// With FitOptions::early_stopping: whether training stopped before `epochs`.
  bool stopped_early = false;
};

/// Runs `epochs` × `batches`: zero_grad, loss = batch_loss(epoch, batch), backward, optional clip,
/// optimizer step. Throws ValueError naming the epoch and batch if a loss is not finite, and
/// NonFiniteGradError (optim/clip.hpp) naming them, the parameter and the element if a gradient is
/// NaN or ±inf — before that step, so the weights and the optimizer's state stay finite.
History fit(Optimizer& optimizer, std::size_t batches,
            const std::function<Tensor(std::size_t epoch, std::size_t batch)>& batch_loss, const FitOptions& options = {});

/// Truncated backprop-through-time over one long sequence.
struct TruncatedOptions {
  std::size_t k1 = 20;      ///< steps per update: the optimizer steps once every k1 steps
  std::size_t k2 = 0;       ///< gradient horizon in steps (0: = k1); see train_truncated for k2 < k1 and k2 > k1
  double clip_norm = 0.0;   ///< clip the gradients' global norm before each update (0: no clipping)
  /// Data-parallel (train/distributed.hpp): each rank runs its own sequence, the gradients are averaged
  /// before each update, the mean loss returned is over every rank's steps, and an exception on any
  /// rank ends the whole job with its message (in one process it reaches the caller, the DataParallel
  /// ready for the next step, as with fit). It must be made for train_truncated's optimizer (the
  /// same parameters, in order), and every rank must pass the same steps, k1 and k2 (checked on every
  /// rank before the first window): ValueError otherwise.
  DataParallel* parallel = nullptr;
};

/// Runs a stateful `model` over `steps` time steps of one long sequence, TBPTT(k1, k2): every k1
/// steps the summed losses of those k1 steps are backpropagated and the optimizer steps; the state
/// is carried on (never reset). How far back the gradient goes is k2:
///  - k2 ≤ k1: the carried state is detached every k2 steps inside the window, so no gradient spans
///    more than k2 steps (k2 = k1, the default: each window back to its own start).
///  - k2 > k1 (Williams & Peng's BPTT(h; h'), the form usually quoted): each window's losses are
///    backpropagated through the last k2 steps, into the windows before it. The model is rewound
///    to its state saved before step end − k2 (Module::save_state, nn/reset.hpp) and those steps
///    are run again under recording — k2/k1 times the forward work, the memory of k2 steps. So
///    `step_loss` is called again for steps already seen, in increasing order from the rewound
///    state: it must feed the same step t each time (index the data by t; don't read a stream), and
///    every stateful layer must implement save_state/restore_state (Recur does). The returned mean
///    counts each step's loss once. Dropout inside draws new masks on the re-run.
/// `step_loss(t)` feeds step t to the model and returns that step's loss. Returns the mean loss per step.
/// A NaN or ±inf gradient stops it before the update, as in fit() (NonFiniteGradError naming the window).
double train_truncated(Module& model, Optimizer& optimizer, std::size_t steps,
                       const std::function<Tensor(std::size_t t)>& step_loss, const TruncatedOptions& options = {});

/// A progress line: "epoch 3/10  batch 45/100  loss 0.1234  210.5 batch/s  ETA 0:12". Usable by hand.
class Progress {
 public:
  /// Writes to `out` (nullptr: nothing) for epochs `first_epoch` … `epochs` − 1 (0-based, printed
  /// from 1: a run resumed at first_epoch shows "epoch 4/5") × `batches`; tty as FitOptions::tty
  /// (−1: detect). The rate and ETA count this run's batches only.
  Progress(std::ostream* out, std::size_t epochs, std::size_t batches, int tty = -1, std::size_t first_epoch = 0);
  /// After batch `batch` (0-based) of `epoch` (0-based) with the running mean loss.
  void update(std::size_t epoch, std::size_t batch, double mean_loss);
  /// After an epoch: a final line for it.
  void epoch_done(const EpochRecord& record);

 private:
  std::ostream* m_out;
  std::size_t m_epochs, m_batches, m_first;
  bool m_tty;
  double m_start;
  double m_last_draw = -1;
};

}  // namespace rwd
