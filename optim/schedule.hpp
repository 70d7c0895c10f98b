// rewind/optim/schedule.hpp — learning-rate schedules that drive an optimizer's lr, as PyTorch's
// torch.optim.lr_scheduler does.
//
//     rwd::SGD opt(params, {.lr = 0.1});
//     rwd::CosineAnnealingLR sched(opt, /*T_max=*/100);
//     for (int epoch = 0; epoch < 100; ++epoch) {
//       train_one_epoch(opt);          // opt.step() many times
//       sched.step();                  // then move the lr for the next epoch
//     }
//
// Construction reads the optimizer's current lr as base_lr and leaves it there (epoch 0) — except
// LinearLR and LambdaLR, which set epoch 0's lr at once, as PyTorch's constructors do. Each step()
// advances the epoch e and sets the lr. Like PyTorch, each schedule computes the next lr from the
// optimizer's current one (its "chainable" form), so a schedule composes with a manual set_lr() or a
// second schedule; left alone, it follows the closed form given with each class. A schedule holds a
// reference to its optimizer, which must outlive it.
//
// state_dict(): "last_epoch", "base_lr" and "last_lr" (0-d float64; ReduceLROnPlateau: its epoch,
// best and counters), then the schedule's configuration under PyTorch's names ("step_size", "gamma",
// "milestones" (1-D, sorted), "T_max", "eta_min", "start_factor", "end_factor", "total_iters";
// ReduceLROnPlateau's options, the flags as 0/1). The optimizer's own state_dict() carries the lr itself.
// load_state_dict() refuses a state whose configuration is not this schedule's (ValueError naming the
// key and both values), where PyTorch's would replace the configuration with the saved one: a run
// resumed into a schedule configured otherwise would go on along another curve without a word. So
// construct the resumed run's schedule as the first run's was. A state of another kind of schedule
// has other keys and is refused by key. LambdaLR's function is not saved (it is code): a resumed run
// must be given the same one. A state saved before schedules saved these (rewind before 2026-12-01:
// "last_epoch" and "base_lr" alone; ReduceLROnPlateau without its options) still loads, unchecked,
// its last lr taken as the optimizer's lr. save_checkpoint/load_checkpoint (train/checkpoint.hpp) carry a schedule
// in the run's one file.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "optimizer.hpp"

namespace rwd {

/// Base of the epoch-driven schedules.
class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  /// Advances one epoch and sets the optimizer's lr. If that lr is not finite (a γ > 1 applied too
  /// often) or negative, throws ValueError naming the schedule and the epoch, with nothing changed;
  /// an exception from a LambdaLR's function also leaves everything as it was.
  void step();
  /// The lr set by the last step() (the optimizer's lr at construction before any).
  double last_lr() const { return m_last_lr; }
  /// Epochs stepped so far (0 after construction).
  std::int64_t last_epoch() const { return m_last_epoch; }
  /// The optimizer's lr when the schedule was made.
  double base_lr() const { return m_base_lr; }
  /// The optimizer whose lr this schedule sets.
  Optimizer& optimizer() const { return m_opt; }
  /// "StepLR", … (for messages).
  virtual const char* name() const { return "LRScheduler"; }

  /// "last_epoch", "base_lr", "last_lr", then the configuration (see above), copies.
  StateDict state_dict() const;
  /// Restores state_dict()'s output after checking it (missing/unexpected keys, shapes, values, a
  /// configuration other than this schedule's); on error nothing changes. Does not touch the
  /// optimizer's lr (its own state has it).
  void load_state_dict(const StateDict& state);

 protected:
  /// Takes the optimizer's current lr as base_lr and last_lr, at epoch 0; keeps a reference to `opt`.
  explicit LRScheduler(Optimizer& opt);
  /// Makes `lr` the lr of epoch last_epoch() (the optimizer's, and last_lr), or throws ValueError naming
  /// the schedule if it is not finite and ≥ 0, with nothing changed. step() sets every epoch's through
  /// it; LinearLR and LambdaLR set epoch 0's, whose lr is not base_lr (as PyTorch's constructors do).
  void set_epoch_lr(double lr);
  /// The lr for epoch last_epoch() (already advanced), given the optimizer's current lr.
  virtual double next_lr(double current) const = 0;
  /// The configuration state_dict() saves and load_state_dict() compares (none by default: LambdaLR).
  virtual StateDict config() const;

 private:
  Optimizer& m_opt;
  double m_base_lr;
  double m_last_lr;
  std::int64_t m_last_epoch = 0;
};

/// lr = base_lr · γ^⌊e / step_size⌋: multiplied by γ every step_size epochs.
class StepLR : public LRScheduler {
 public:
  const char* name() const override { return "StepLR"; }
  /// Throws ValueError unless step_size ≥ 1.
  StepLR(Optimizer& opt, std::int64_t step_size, double gamma = 0.1);

 protected:
  double next_lr(double current) const override;
  StateDict config() const override;

 private:
  std::int64_t m_step_size;
  double m_gamma;
};

/// lr = base_lr · γ^e: multiplied by γ every epoch.
class ExponentialLR : public LRScheduler {
 public:
  const char* name() const override { return "ExponentialLR"; }
  /// PyTorch's ExponentialLR(opt, gamma); throws ValueError unless γ is finite and ≥ 0.
  ExponentialLR(Optimizer& opt, double gamma);

 protected:
  double next_lr(double current) const override;
  StateDict config() const override;

 private:
  double m_gamma;
};

/// lr = η_min + (base_lr − η_min)·(1 + cos(π·e / T_max))/2: half a cosine from base_lr down to η_min
/// over T_max epochs (SGDR without restarts). Past T_max it follows the cosine back up, as PyTorch's does.
/// (With η_min above base_lr = 0 it anneals upwards; a rounding just below 0 is given as 0, not −1e−17.)
class CosineAnnealingLR : public LRScheduler {
 public:
  const char* name() const override { return "CosineAnnealingLR"; }
  /// Throws ValueError unless T_max ≥ 1.
  CosineAnnealingLR(Optimizer& opt, std::int64_t T_max, double eta_min = 0.0);

 protected:
  double next_lr(double current) const override;
  StateDict config() const override;

 private:
  std::int64_t m_T_max;
  double m_eta_min;
};

/// lr = base_lr · γ^(number of milestones ≤ e): multiplied by γ at each milestone epoch. As PyTorch's
/// (a Counter), the milestones may come in any order, and one given k times multiplies by γ^k there.
class MultiStepLR : public LRScheduler {
 public:
  const char* name() const override { return "MultiStepLR"; }
  /// Throws ValueError unless every milestone is ≥ 1 (epoch 0 is construction: it would never fire)
  /// and γ is finite and ≥ 0 (as StepLR's; γ = 0 leaves the lr at 0 from the first milestone on).
  MultiStepLR(Optimizer& opt, std::vector<std::int64_t> milestones, double gamma = 0.1);

 protected:
  double next_lr(double current) const override;
  StateDict config() const override;

 private:
  std::vector<std::int64_t> m_milestones;  // sorted, duplicates kept
  double m_gamma;
};

/// lr = base_lr · (s + (f − s)·min(e, T)/T): linearly from start_factor s to end_factor f over T =
/// total_iters epochs, then constant — the usual warmup (s < f) or a linear decay. As PyTorch's,
/// construction already sets the lr to base_lr·s (epoch 0 trains at it), and each step applies the
/// ratio of consecutive values to the current lr (chainable).
class LinearLR : public LRScheduler {
 public:
  const char* name() const override { return "LinearLR"; }
  /// PyTorch's defaults; throws ValueError unless 0 < s ≤ 1, 0 ≤ f ≤ 1 and T ≥ 1.
  explicit LinearLR(Optimizer& opt, double start_factor = 1.0 / 3, double end_factor = 1.0,
                    std::int64_t total_iters = 5);

 protected:
  double next_lr(double current) const override;
  StateDict config() const override;

 private:
  double m_start, m_end;
  std::int64_t m_total_iters;
};

/// lr = base_lr · λ(e) for a function λ of the epoch. As PyTorch's, construction sets the lr to
/// base_lr·λ(0), and it is not chainable: each step overrides a manual set_lr(). λ's lr must be
/// finite and ≥ 0 (ValueError otherwise, at construction or in step(), nothing changed); λ is
/// copied (what it captures by reference must outlive the schedule). base_lr is the optimizer's lr
/// at construction, where PyTorch takes the lr the *first* schedule found (its "initial_lr"): so
/// construct a LambdaLR before a schedule that moves the lr at construction (LinearLR, another
/// LambdaLR).
class LambdaLR : public LRScheduler {
 public:
  const char* name() const override { return "LambdaLR"; }
  /// Throws ValueError if `factor` is empty or base_lr·λ(0) is not finite and ≥ 0.
  LambdaLR(Optimizer& opt, std::function<double(std::size_t epoch)> factor);

 protected:
  double next_lr(double current) const override;

 private:
  std::function<double(std::size_t)> m_factor;
};

/// ReduceLROnPlateau's options (PyTorch's names and defaults).
struct PlateauOptions {
  bool maximize = false;        ///< PyTorch's mode: false = "min" (a loss), true = "max" (an accuracy)
  double factor = 0.1;          ///< new lr = max(lr·factor, min_lr)
  std::int64_t patience = 10;   ///< epochs without improvement tolerated before reducing
  double threshold = 1e-4;      ///< what counts as an improvement (see relative_threshold)
  bool relative_threshold = true;  ///< "rel": better than best·(1 ∓ threshold); false = "abs": best ∓ threshold
  std::int64_t cooldown = 0;    ///< epochs to wait after a reduction before counting again
  double min_lr = 0.0;          ///< a reduction never takes the lr below this
  double eps = 1e-8;            ///< a reduction smaller than this is skipped
};

/// Divides the lr by 1/factor when a metric has stopped improving for `patience` epochs.
class ReduceLROnPlateau {
 public:
  /// Throws ValueError unless 0 ≤ factor < 1, patience, cooldown, threshold ≥ 0, and min_lr finite and ≥ 0.
  explicit ReduceLROnPlateau(Optimizer& opt, PlateauOptions options = {});
  /// One epoch's metric (NaN counts as no improvement).
  void step(double metric);
  /// The best metric so far (+inf when minimizing, −inf when maximizing, before any step).
  double best() const { return m_best; }
  /// Epochs since the last improvement (reset by a reduction, and held at 0 during cooldown).
  std::int64_t num_bad_epochs() const { return m_num_bad_epochs; }
  /// Epochs stepped so far (0 after construction).
  std::int64_t last_epoch() const { return m_last_epoch; }
  /// The optimizer's current lr.
  double last_lr() const { return m_opt.lr(); }

  /// "last_epoch", "best", "num_bad_epochs", "cooldown_counter", then the options (see above).
  StateDict state_dict() const;
  /// Restores state_dict()'s output after checking it (keys, shapes, counts whole and ≥ 0 and within
  /// patience and cooldown, best not NaN, the options this schedule's); on error nothing changes. Does
  /// not touch the optimizer's lr (its own state has it).
  void load_state_dict(const StateDict& state);

 private:
  StateDict config() const;
  bool is_better(double a) const;
  Optimizer& m_opt;
  PlateauOptions m_options;
  double m_best;
  std::int64_t m_num_bad_epochs = 0;
  std::int64_t m_cooldown_counter = 0;
  std::int64_t m_last_epoch = 0;
};

}  // namespace rwd
