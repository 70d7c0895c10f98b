// rewind/autograd/gradcheck.hpp — checking gradients by central finite differences, in float64.
//
//   auto report = gradcheck([&](const std::vector<Tensor>& in) { return model_loss(in[0], in[1]); },
//                           {W.set_name("W"), b.set_name("b")});
//   std::cout << report;          // reads like a diagnosis
//   if (!report) …                // false when any gradient is wrong
//
// The function may return any shape: a non-scalar output y is scalarized as Σ y⊙w with fixed random
// weights w (seeded), which checks wᵀJ — an asymmetric projection, so a transposed or permuted
// gradient cannot hide behind a plain sum.
//
// Inputs are leaf tensors; those with requires_grad are checked, the others are held fixed. Two
// inputs whose values overlap in memory (a leaf view of another, made under NoGradGuard) are a
// ValueError naming both: nudging one would move the other, and the difference would measure both
// (non-overlapping views of one storage, and the same tensor passed twice, are fine). float32
// inputs are promoted to float64 in place for the check (the function, and anything that captured
// the same handles — a model's parameters — sees float64) and restored afterwards; the float32
// gradient is also compared with the float64 one (the "float64 shadow" of a float32 model).
//
// Which op. When an input's gradient is wrong, the report names the entries that use it and then
// looks for the op whose backward is at fault: from each user, forward toward the output, it checks
// the adjoint each entry received against a finite difference taken by nudging that entry's output
// as it is recorded (Tape::set_output_probe; a few elements per entry, the largest adjoints first).
// A value with a wrong adjoint whose readers all receive right ones is where the error enters: a
// reader's backward rule (a custom op's, typically) sends a wrong adjoint. A few hundred extra
// evaluations of f, only when something failed.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "../core/tensor.hpp"

namespace rwd {

/// Tolerances of gradcheck: an element fails when |analytic − numeric| > atol + rtol·|numeric|.
/// eps must be finite and > 0, the tolerances finite and ≥ 0 (else ValueError naming the option);
/// a function that gives another value when called again is a ValueError ("not deterministic"),
/// not a failed gradient.
struct GradcheckOptions {
  double eps = 1e-6;             ///< central-difference step
  double atol = 1e-5;            ///< absolute tolerance per element
  double rtol = 1e-3;            ///< relative tolerance per element, times |numeric|
  std::uint32_t seed = 0;        ///< for the scalarizing weights
  std::size_t worst = 3;         ///< how many worst elements each input lists
  double float32_rtol = 1e-3;    ///< float32 inputs pass when ‖g₃₂ − g₆₄‖ ≤ float32_atol + float32_rtol·‖g₆₄‖
  double float32_atol = 1e-5;    ///< (a floor: a near-zero gradient, e.g. at a minimum, is all rounding)
};

/// One checked element.
struct ElementError {
  std::vector<std::size_t> index;  ///< multi-index into the input
  double value = 0;                ///< the input's value there (a bug only where x < 0 shows in it)
  double analytic = 0;             ///< the tape's gradient (float64)
  double numeric = 0;              ///< the central difference (L(x + ε) − L(x − ε)) / 2ε
  double abs_err = 0;              ///< |analytic − numeric|
  double rel_err = 0;              ///< abs_err / max(|analytic|, |numeric|); 0 when both are 0
};

/// The verdict for one input.
struct InputReport {
  std::string name;                ///< the tensor's name, or "input <i>"
  Shape shape;                     ///< the input's shape
  bool was_float32 = false;        ///< the input was float32 (promoted to float64 for the check)
  double max_abs_err = 0;          ///< largest abs_err over the input's elements
  double max_rel_err = 0;          ///< largest rel_err over the input's elements
  std::size_t n_checked = 0;       ///< elements checked (all of them: the input's numel)
  std::size_t n_failed = 0;        ///< elements outside atol + rtol·|numeric| (NaN counts as failed)
  std::vector<ElementError> worst;  ///< largest errors first
  double float32_rel_diff = 0;      ///< ‖g₃₂ − g₆₄‖ / ‖g₆₄‖ when was_float32
  bool float32_ok = true;           ///< float32 gradient within the float32 tolerances (true when not was_float32)
  // When elements fail, where the error comes from (see "Which op" at the top of this file):
  std::vector<std::string> used_by;   ///< the tape entries that use this input ("#6 t=1 matmul")
  std::vector<std::string> suspects;  ///< entries whose own adjoint is right but one of whose backwards
                                      ///< sends a wrong one on, toward this input
  /// True when no element failed and the float32 gradient (if any) agrees with the float64 one.
  bool ok() const { return n_failed == 0 && float32_ok; }
};

/// The report gradcheck returns: per input, by name. Converts to false when anything failed.
struct GradcheckReport {
  std::string what = "gradcheck";  ///< "gradcheck" or "gradgradcheck"
  GradcheckOptions options;        ///< the options the check ran with
  double value = 0;                ///< the scalarized output at the given inputs
  std::vector<InputReport> inputs;  ///< one per checked input (those with requires_grad), in argument order
  /// True when every checked input is ok() — and false when no input was checked at all.
  bool ok() const;
  /// ok(): `if (!report)` reads as "the check failed".
  explicit operator bool() const { return ok(); }
  /// The diagnosis as text: a verdict line, then each input with its worst elements.
  std::string str() const;
};

std::ostream& operator<<(std::ostream& os, const GradcheckReport& report);

/// A function of tensors, as gradcheck sees it.
using TensorFunction = std::function<Tensor(const std::vector<Tensor>&)>;

/// Compares the tape's gradients of f with central differences, for every input with requires_grad.
GradcheckReport gradcheck(const TensorFunction& f, const std::vector<Tensor>& inputs, GradcheckOptions options = {});

/// Second order: checks the gradient of ⟨∇f, v⟩ (v fixed random, the gradient computed with
/// create_graph) by finite differences — i.e. double backward and Hessian-vector products.
GradcheckReport gradgradcheck(const TensorFunction& f, const std::vector<Tensor>& inputs,
                              GradcheckOptions options = {});

}  // namespace rwd
