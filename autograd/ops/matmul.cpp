// C = op(A)·op(B), op(X) = X or Xᵀ by flag; 2-D, or batched over a leading dimension.
// backward: prim::matmul_rule[2·ta + tb] (autograd/primitives.hpp), one rule per transpose case; each
// product below is commented with the case it computes.
// Every product goes to BLAS gemm with its transpose flags, so no transpose is ever copied.
#include "op.hpp"

namespace rwd {

Tensor matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  // ---- shape check ----
  const Shape so = kernels::matmul_shape("matmul", a, b, ta, tb);

  // ---- forward ----
  // Uninitialized: gemm with β = 0 writes every element (and an empty inner dimension gives zeros).
  Tensor c = detail::empty_tensor(so, a.dtype());
  kernels::gemm_into(a, b, ta, tb, c, 0.0);

  // ---- backward ----
  return record(prim::matmul_rule[2 * ta + tb], {a, b}, c, [ta, tb](BackwardContext& ctx) {
    const Tensor &A = ctx.input(0), &B = ctx.input(1), &dC = ctx.grad_out();
    if (ctx.needs_grad(0)) {
      if (!ta) ctx.accumulate_matmul(0, dC, B, false, !tb);  // dC·Bᵀ or dC·B
      else ctx.accumulate_matmul(0, B, dC, tb, true);        // B·dCᵀ or Bᵀ·dCᵀ
    }
    if (ctx.needs_grad(1)) {
      if (!tb) ctx.accumulate_matmul(1, A, dC, !ta, false);  // Aᵀ·dC or A·dC
      else ctx.accumulate_matmul(1, dC, A, true, ta);        // dCᵀ·A or dCᵀ·Aᵀ
    }
  });
}

}  // namespace rwd
