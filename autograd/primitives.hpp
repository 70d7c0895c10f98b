// rewind/autograd/primitives.hpp — every primitive's name and backward rule, said once.
//
// A primitive records itself on the tape as `record(prim::tanh, {x}, y, backward)`: the name and the
// rule below are what the entry carries, what print_tape / explain_backward / to_dot show, and what
// the op file's header comment points to (it keeps the forward math and the why, never a second
// copy of the rule). Where an op has variants with different rules (matmul's transpose flags,
// affine's bias and base, pow by a number or by a tensor), each variant is its own entry.
//
// Notation: dy (dz, dC) is the output's adjoint, ⊙ the element-wise product, Σ_broadcast the sum
// that undoes broadcasting (sum_to_shape), [c] the 0/1 mask of a condition, · a matrix product.
// Every rule ADDS (tape.hpp: the accumulate rule).
//
// tests/test_ops_grad.cpp enumerates all_primitives(): every entry must be recorded, with its rule,
// by some row of the gradient-check table, and every rule a row records must come from here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace rwd {

/// Which values a backward reads (Primitive::reads): bit k for input k, kReadsOutput for the output.
inline constexpr std::uint32_t kReadsNothing = 0, kReadsAB = 3, kReadsOutput = 1u << 31, kReadsAll = ~0u;

/// A primitive as the tape records it: the op's name and its backward rule as text.
struct Primitive {
  const char* op;    ///< as printed ("matmul", "tanh")
  const char* rule;  ///< the backward rule ("dx += dy⊙(1−y²)"), for the explain views
  /// The values its backward reads, both ways (plain and create_graph): the tape may drop a value
  /// that no backward reads once nothing else holds it (Tape::drop_unread) — sigmoid's input, the
  /// operands of an add, a gate block cut into slices. Shapes and dtypes stay readable. All by default.
  std::uint32_t reads = kReadsAll;
};

namespace prim {

// ---- arithmetic (NumPy broadcasting; each operand's adjoint summed back to its shape) ----
inline constexpr Primitive add{"add", "da += dz; db += dz (summed to shape)", kReadsNothing};
inline constexpr Primitive sub{"sub", "da += dz; db −= dz (summed to shape)", kReadsNothing};
inline constexpr Primitive mul{"mul", "da += dz⊙b; db += dz⊙a", kReadsAB};
// ∂(a/b)/∂b = −a/b² = −z/b: the output is reused instead of squaring b.
inline constexpr Primitive div{"div", "da += dz/b; db −= dz⊙z/b"};
inline constexpr Primitive neg{"neg", "dx −= dy", kReadsNothing};
inline constexpr Primitive pow{"pow", "dx += dy⊙p·xᵖ⁻¹"};  // p a number
// p a tensor: ∂(xᵖ)/∂p = xᵖ·ln x = z·ln x.
inline constexpr Primitive pow_tensor{"pow", "dx += dz⊙p·xᵖ⁻¹; dp += dz⊙z·ln x"};

// ---- element-wise functions ----
inline constexpr Primitive exp{"exp", "dx += dy⊙y", kReadsOutput};
inline constexpr Primitive log{"log", "dx += dy/x"};
inline constexpr Primitive log1p{"log1p", "dx += dy/(1+x)"};
inline constexpr Primitive sqrt{"sqrt", "dx += dy/(2y)", kReadsOutput};
inline constexpr Primitive tanh{"tanh", "dx += dy⊙(1−y²)", kReadsOutput};
inline constexpr Primitive sigmoid{"sigmoid", "dx += dy⊙y⊙(1−y)", kReadsOutput};
inline constexpr Primitive relu{"relu", "dx += x>0 ? dy : 0"};  // selected (an inf dy gives 0, not NaN, where x ≤ 0)
inline constexpr Primitive abs{"abs", "dx += dy⊙sign(x)"};  // sign(0) = 0, as in PyTorch
inline constexpr Primitive clamp{"clamp", "dx += lo≤x≤hi ? dy : 0"};  // inclusive at the bounds, as PyTorch; selected
inline constexpr Primitive where{"where", "da += where(c, dz, 0); db += where(c, 0, dz)", kReadsNothing};
inline constexpr Primitive cast{"cast", "dx += cast(dy, x.dtype)", kReadsNothing};

// ---- linear algebra ----
/// matmul's rule by its transpose flags: matmul_rule[2·ta + tb] for C = op(A)·op(B).
inline constexpr Primitive matmul_rule[4] = {
    {"matmul", "dA += dC·Bᵀ; dB += Aᵀ·dC", kReadsAB},    // C = A·B
    {"matmul", "dA += dC·B; dB += dCᵀ·A", kReadsAB},     // C = A·Bᵀ
    {"matmul", "dA += B·dCᵀ; dB += A·dC", kReadsAB},     // C = Aᵀ·B
    {"matmul", "dA += Bᵀ·dCᵀ; dB += dCᵀ·Aᵀ", kReadsAB},  // C = Aᵀ·Bᵀ
};
/// affine's rule by what it adds: affine_rule[2·has_bias + has_base] for y = W·x (+ b) (+ base).
inline constexpr Primitive affine_rule[4] = {
    {"affine", "dW += dy·xᵀ; dx += Wᵀ·dy", kReadsAB},
    {"affine", "dW += dy·xᵀ; dx += Wᵀ·dy; dbase += dy", kReadsAB},
    {"affine", "dW += dy·xᵀ; dx += Wᵀ·dy; db += Σ_cols dy", kReadsAB},
    {"affine", "dW += dy·xᵀ; dx += Wᵀ·dy; db += Σ_cols dy; dbase += dy", kReadsAB},
};

// ---- shape ----
inline constexpr Primitive reshape{"reshape", "dx += reshape(dy, x.shape)", kReadsNothing};
inline constexpr Primitive permute{"permute", "dx += permute(dy, axes⁻¹)", kReadsNothing};
// Each copy sends its adjoint back to the one element it copied.
inline constexpr Primitive broadcast_to{"broadcast_to", "dx += Σ_broadcast dy", kReadsNothing};
// dy placed back at the sliced positions, zeros elsewhere; unslice is slice's adjoint and a
// primitive of its own, so double backward stays on the tape.
inline constexpr Primitive slice{"slice", "dx += unslice(dy)", kReadsNothing};
inline constexpr Primitive unslice{"unslice", "dg += slice(dy)", kReadsNothing};
inline constexpr Primitive concat{"concat", "dxᵢ += dy[offᵢ : offᵢ+nᵢ]", kReadsNothing};
inline constexpr Primitive stack{"stack", "dxᵢ += dy[i]", kReadsNothing};

// ---- reductions ----
inline constexpr Primitive sum{"sum", "dx += broadcast(dy)", kReadsNothing};  // every summed element gets its sum's adjoint
// The first maximal element takes the whole adjoint.
inline constexpr Primitive max{"max", "dx += dy at the argmax, 0 elsewhere"};
// Over every element: the k elements equal to the extreme (the k NaNs when it is NaN) share the
// adjoint equally — PyTorch's torch.max(x) / torch.min(x) (evenly_distribute_backward).
inline constexpr Primitive max_all{"max", "dx += (dy / k) at each of the k maxima"};
inline constexpr Primitive min_all{"min", "dx += (dy / k) at each of the k minima"};

// ---- indexing (each with its adjoint as a primitive, so double backward stays on the tape) ----
inline constexpr Primitive index_select{"index_select", "dx += index_add(dy)"};  // repeats add up
inline constexpr Primitive index_add{"index_add", "dg += index_select(dy)"};
inline constexpr Primitive gather{"gather", "dx += scatter_add(dy)"};
inline constexpr Primitive scatter_add{"scatter_add", "dg += gather(dy)"};

// ---- recorded by the sweep ----
// backward(create_graph) gives a leaf's first gradient its own entry, so .grad() is a fresh tensor
// (never the seed or an adjoint shared with another input) that still has history.
inline constexpr Primitive clone{"clone", "dx += dy"};

}  // namespace prim

/// Every primitive, each variant its own entry, in the order above (tests and tools enumerate it).
inline constexpr const Primitive* all_primitives_table[] = {
    &prim::add,         &prim::sub,            &prim::mul,            &prim::div,
    &prim::neg,         &prim::pow,            &prim::pow_tensor,     &prim::exp,
    &prim::log,         &prim::log1p,          &prim::sqrt,           &prim::tanh,
    &prim::sigmoid,     &prim::relu,           &prim::abs,            &prim::clamp,
    &prim::where,       &prim::cast,           &prim::matmul_rule[0], &prim::matmul_rule[1],
    &prim::matmul_rule[2], &prim::matmul_rule[3], &prim::affine_rule[0], &prim::affine_rule[1],
    &prim::affine_rule[2], &prim::affine_rule[3], &prim::reshape,     &prim::permute,
    &prim::broadcast_to, &prim::slice,          &prim::unslice,        &prim::concat,
    &prim::stack,       &prim::sum,            &prim::max,            &prim::max_all,
    &prim::min_all,     &prim::index_select,   &prim::index_add,      &prim::gather,
    &prim::scatter_add, &prim::clone,
};

/// Every primitive (see all_primitives_table).
inline std::span<const Primitive* const> all_primitives() { return all_primitives_table; }

}  // namespace rwd
