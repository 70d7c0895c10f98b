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
// Inputs are leaf tensors; those with requires_grad are checked, the others are held fixed. float32
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
struct GradcheckOptions {
  double eps = 1e-6;             ///< central-difference step
  double atol = 1e-5;
  double rtol = 1e-3;
  std::uint32_t seed = 0;        ///< for the scalarizing weights
  std::size_t worst = 3;         ///< how many worst elements each input lists
  double float32_rtol = 1e-3;    ///< float32 inputs pass when ‖g₃₂ − g₆₄‖ ≤ float32_atol + float32_rtol·‖g₆₄‖
  double float32_atol = 1e-5;    ///< (a floor: a near-zero gradient, e.g. at a minimum, is all rounding)
};

/// One checked element.
struct ElementError {
  std::vector<std::size_t> index;  ///< multi-index into the input
  double value = 0;                ///< the input's value there (a bug only where x < 0 shows in it)
  double analytic = 0, numeric = 0, abs_err = 0, rel_err = 0;
};

/// The verdict for one input.
struct InputReport {
  std::string name;                ///< the tensor's name, or "input <i>"
  Shape shape;
  bool was_float32 = false;
  double max_abs_err = 0, max_rel_err = 0;
  std::size_t n_checked = 0, n_failed = 0;
  std::vector<ElementError> worst;  ///< largest errors first
  double float32_rel_diff = 0;      ///< ‖g₃₂ − g₆₄‖ / ‖g₆₄‖ when was_float32
  bool float32_ok = true;
  // When elements fail, where the error comes from (see "Which op" at the top of this file):
  std::vector<std::string> used_by;   ///< the tape entries that use this input ("#6 t=1 matmul")
  std::vector<std::string> suspects;  ///< entries whose own adjoint is right but one of whose backwards
                                      ///< sends a wrong one on, toward this input
  bool ok() const { return n_failed == 0 && float32_ok; }
};

/// The report gradcheck returns: per input, by name. Converts to false when anything failed.
struct GradcheckReport {
  std::string what = "gradcheck";  ///< "gradcheck" or "gradgradcheck"
  GradcheckOptions options;
  double value = 0;                ///< the scalarized output at the given inputs
  std::vector<InputReport> inputs;
  bool ok() const;
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
