// C = op(A)·op(B), op(X) = X or Xᵀ by flag; 2-D, or batched over a leading dimension.
// For C = A·B:    dA += dC·Bᵀ      dB += Aᵀ·dC
// For C = A·Bᵀ:   dA += dC·B       dB += dCᵀ·A
// For C = Aᵀ·B:   dA += B·dCᵀ      dB += A·dC
// For C = Aᵀ·Bᵀ:  dA += Bᵀ·dCᵀ     dB += dCᵀ·Aᵀ
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
  const char* rule = !ta && !tb ? "dA += dC·Bᵀ; dB += Aᵀ·dC"
                     : !ta      ? "dA += dC·B; dB += dCᵀ·A"
                     : !tb      ? "dA += B·dCᵀ; dB += A·dC"
                                : "dA += Bᵀ·dCᵀ; dB += dCᵀ·Aᵀ";
  return record("matmul", {a, b}, c, rule, [ta, tb](BackwardContext& ctx) {
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
