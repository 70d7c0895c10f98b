// rewind/optim/optimizer.hpp — what every optimizer shares: the parameters, the learning rate, the
// per-parameter state, and saving and restoring that state.
//
//  The loop everyone knows
//      rwd::Adam opt(model.parameters(), {.lr = 1e-3});
//      for (auto& batch : data) {
//        opt.zero_grad();
//        Tensor loss = loss_fn(model(batch.x), batch.y);
//        loss.backward();
//        opt.step();            // every p that has a .grad():  p ← update(p, p.grad(), state_p)
//      }
//
//  Parameters. Leaf tensors, each once; an empty list is a ValueError naming the optimizer (as
//  PyTorch's "optimizer got an empty parameter list").
//
//  In place. step() writes the new values into each parameter's own storage, so every handle to it
//  (the model's, the caller's) sees them, and it records nothing on the tape. A parameter whose
//  grad() is undefined (nothing reached it this step) is skipped, state and all — PyTorch's rule.
//
//  State. Each optimizer names its per-parameter slots (Adam: step, exp_avg, exp_avg_sq). They are
//  created on a parameter's first update, zero-filled, in the parameter's dtype (a per-parameter step
//  counter is a float64 scalar), so float32 parameters keep float32 state.
//
//  Non-finite gradients. step() applies whatever the gradients hold, as PyTorch's optimizers do: a
//  NaN gradient makes a NaN weight (and Adam's state NaN or inf) without a word. fit() and
//  train_truncated() check before each step and stop with the parameter and element at fault; a
//  hand-written loop calls check_finite_grads(params, "where") (optim/clip.hpp) before step(), or
//  clip_grad_norm(params, max_norm, 2, /*error_if_nonfinite=*/true), which checks as it measures.
//
//  state_dict(): named tensors that, with the parameters' values, resume training exactly:
//      "step"          0-d float64  number of step() calls so far
//      "lr"            0-d float64  the learning rate now (a schedule may have moved it)
//      "<i>.<slot>"    the slot of parameter i (position in the vector given to the constructor),
//                      for every parameter that has state; parameter-shaped, or 0-d for counters
//  The tensors are copies: saving, then stepping on, does not change what was saved.
//
//  load_state_dict() checks the whole dictionary before touching anything — an unexpected or
//  duplicate key, a missing key (a parameter has all of its slots or none), a shape that is not the
//  parameter's (ShapeError naming the key and both shapes), a step or lr that is not a valid value,
//  and a state no update could have produced (a NaN or infinite element — also one that would become
//  infinite in the parameter's dtype — or a negative mean of squares such as Adam's exp_avg_sq, whose
//  square root would turn the next step's numbers into NaN) — and throws with the optimizer unchanged,
//  naming the key (and the element). A state of the other float dtype is converted to the
//  parameter's, as PyTorch casts it. Saving and loading in one dtype is exact.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "../core/tensor.hpp"

namespace rwd {

/// An optimizer's (or a schedule's) saved state: NamedTensors (core/tensor.hpp).
using StateDict = NamedTensors;

/// Base of the optimizers: parameters, learning rate, lazily created per-parameter state.
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  /// Updates every parameter that has a gradient, in place, without recording.
  void step();
  /// Zeroes every parameter's gradient (keeping the buffers), or drops them when `set_to_none`.
  void zero_grad(bool set_to_none = false);

  /// The learning rate used by the next step().
  double lr() const { return m_lr; }
  /// Sets the learning rate (schedules call this); throws ValueError unless finite and ≥ 0.
  void set_lr(double lr);
  /// Number of step() calls so far (restored by load_state_dict).
  std::int64_t step_count() const { return m_step_count; }
  /// The parameters, in the order given to the constructor (the <i> of state keys).
  const std::vector<Tensor>& params() const { return m_params; }
  /// "SGD", "Adam", …
  const char* name() const { return m_name; }
  /// One line with the hyper-parameters: `Adam(lr=0.001, betas=(0.9, 0.999), eps=1e-08, …)`.
  virtual std::string str() const = 0;

  /// Copies of everything a resumed run needs (see the keys above).
  StateDict state_dict() const;
  /// Restores state_dict()'s output after validating all of it; on any error nothing changes.
  void load_state_dict(const StateDict& state);
  /// Throws what load_state_dict(state) would throw, changing nothing (save_checkpoint's check).
  void check_state_dict(const StateDict& state) const;

 protected:
  /// A per-parameter state slot: parameter-shaped (in its dtype), or a float64 0-d counter.
  struct Slot {
    std::string name;      ///< the state key's last part, PyTorch's: "exp_avg", "momentum_buffer", "step"
    bool counter = false;  ///< a float64 0-d counter (like "step") instead of a parameter-shaped tensor
    bool non_negative = false;  ///< a mean of squares (exp_avg_sq, square_avg): a loaded state must be >= 0
  };

  /// `name` must be a string literal. Throws ValueError for an undefined, non-leaf or repeated
  /// parameter, or a bad learning rate.
  Optimizer(const char* name, std::vector<Tensor> params, double lr, std::vector<Slot> slots);

  /// The update of parameter i from its gradient (same shape and dtype), in place.
  virtual void update(std::size_t i, Tensor& param, const Tensor& grad) = 0;

  /// Creates parameter i's slots (zeros) if it has none yet; true if it just did (its first update).
  bool init_state(std::size_t i);
  /// Slot k (in the order given to the constructor) of parameter i; init_state(i) must have run.
  Tensor& state(std::size_t i, std::size_t k) { return m_state[i][k]; }

 private:
  // A state dictionary that passed every check: its tensors by [parameter][slot] (null: none), step, lr.
  struct CheckedState {
    std::vector<std::vector<const Tensor*>> slots;
    std::int64_t step = 0;
    double lr = 0;
  };
  CheckedState check_state(const StateDict& state) const;

  const char* m_name;
  std::vector<Tensor> m_params;
  double m_lr;
  std::int64_t m_step_count = 0;
  std::vector<Slot> m_slots;
  std::vector<std::vector<Tensor>> m_state;  // [parameter][slot]; empty until the first update
};

/// Throws ValueError "<who>: invalid <what>: <value> (<rule>)" unless `ok` — PyTorch's argument checks.
void check_hyper(bool ok, const char* who, const char* what, double value, const char* rule);

/// Throws ValueError "<who>: parameter i is the same tensor as parameter j: each parameter may appear
/// once (<why>)" for the first tensor listed twice in `params` (n log n: sorted by identity).
void refuse_repeated_params(const std::vector<Tensor>& params, const std::string& who, const char* why);

/// A number as the str() lines print it (shortest form: 0.001, 1e-08, 0.9).
std::string format_number(double x);

}  // namespace rwd
