// rewind/autograd/ops.hpp — the primitive ops (each in autograd/ops/<name>.cpp, forward and backward
// side by side) and the compositions built from them (autograd/functional.cpp, no backward of their
// own). Binary ops broadcast like NumPy; operands must share a dtype (convert with Tensor::to).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "../core/tensor.hpp"

namespace rwd {

/// Integer indices (embedding lookup, gather, class labels).
using Indices = std::vector<std::int64_t>;

// ---- primitives: arithmetic (broadcasting) ----
Tensor add(const Tensor& a, const Tensor& b);  ///< a + b
Tensor sub(const Tensor& a, const Tensor& b);  ///< a − b
Tensor mul(const Tensor& a, const Tensor& b);  ///< a ⊙ b
Tensor div(const Tensor& a, const Tensor& b);  ///< a / b
Tensor neg(const Tensor& x);                   ///< −x
Tensor pow(const Tensor& x, double p);         ///< x^p, scalar exponent
Tensor pow(const Tensor& x, const Tensor& p);  ///< x^p elementwise (x > 0 where p's gradient is wanted)

// ---- primitives: elementwise functions ----
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
/// ln(1 + x), accurate for tiny x.
Tensor log1p(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor sqrt(const Tensor& x);
/// min(max(x, lo), hi); the gradient passes where lo ≤ x ≤ hi.
Tensor clamp(const Tensor& x, double lo, double hi);
/// Elementwise choice: cond ≠ 0 ? a : b, broadcasting all three. `cond` is a constant (no gradient).
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
/// Differentiable dtype conversion (also Tensor::to).
Tensor cast(const Tensor& x, Dtype dtype);

// ---- primitives: linear algebra ----
/// op(a) · op(b), op = transpose when the flag is set. 2-D (m, k)·(k, n), or batched 3-D
/// (b, m, k)·(b, k, n). BLAS gemm does the transposes: no copies.
Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_a = false, bool transpose_b = false);
/// W·x + b, the map of a Dense layer and of every recurrent cell, as one primitive: W (rows, cols);
/// x (cols, batch) or (cols,); b a bias per row — (rows,) or (rows, 1), the same for every column — or
/// a base of the output's shape to add to (e.g. another affine's output), or undefined (no bias).
/// The same value and gradients as matmul(W, x) + reshape(b, {rows, 1}), written once.
Tensor affine(const Tensor& W, const Tensor& x, const Tensor& b = Tensor());
/// W·x + b + base: a per-row bias b (or undefined) and a base of the output's shape, e.g. a cell's
/// W_hh·h + b_hh added onto W_ih·x + b_ih in one entry.
Tensor affine(const Tensor& W, const Tensor& x, const Tensor& b, const Tensor& base);
/// W·x + b + base[:, base_first : base_first + batch]: the base a wider (rows, N) matrix of which
/// only x's batch of columns from base_first on is added — one step's block of a whole sequence's
/// input projection (nn/sequence.hpp), read in place instead of sliced out first. x is (cols, batch).
Tensor affine(const Tensor& W, const Tensor& x, const Tensor& b, const Tensor& base, std::size_t base_first);
/// W·[x₀ x₁ … xₙ₋₁] + b: one affine of several (cols, batchᵢ) blocks side by side, (rows, Σ batchᵢ) —
/// the same value and gradients as affine(W, concat(xs, 1), b), as one product, but the concatenation
/// is not kept: the backward gathers the blocks again (a sequence's steps, already kept, are not
/// held twice).
Tensor affine_steps(const Tensor& W, const std::vector<Tensor>& xs, const Tensor& b = Tensor());
/// W·x_t + b at every step t of a (time, cols, batch) sequence x, side by side: (rows, time·batch),
/// step t's columns t·batch … — the same value and gradients as
/// affine(W, reshape(permute(x, {1, 0, 2}), {cols, time·batch}), b), but with no permuted copy of the
/// sequence made or kept, forward or backward: one product a step into its columns (TimeDistributed
/// (Dense) on a long sequence holds the sequence once, not twice).
Tensor affine_seq(const Tensor& W, const Tensor& x, const Tensor& b = Tensor());

// ---- primitives: shape ----
/// Reorders axes: out.shape[i] = x.shape[axes[i]].
Tensor permute(const Tensor& x, const std::vector<int>& axes);
/// Same elements, new shape (same count). A view: shares x's storage (core/tensor.hpp, Views).
Tensor reshape(const Tensor& x, const Shape& shape);
/// Repeats size-1 (and missing leading) dimensions up to `shape`, NumPy rules.
Tensor broadcast_to(const Tensor& x, const Shape& shape);
/// x[..., start:stop:step, ...] along `axis`. A view of x's storage when only size-1 axes come before
/// `axis` (the leading axis, most often) and step is 1; a copy otherwise.
Tensor slice(const Tensor& x, int axis, std::size_t start, std::size_t stop, std::size_t step = 1);
/// The adjoint of slice: zeros of `shape` with g placed at [start:stop:step] along `axis`.
Tensor unslice(const Tensor& g, const Shape& shape, int axis, std::size_t start, std::size_t stop,
               std::size_t step = 1);
/// Joins tensors along an existing axis.
Tensor concat(const std::vector<Tensor>& xs, int axis = 0);
/// Joins same-shaped tensors along a new axis.
Tensor stack(const std::vector<Tensor>& xs, int axis = 0);

// ---- primitives: reductions ----
/// Sum of every element (a 0-d tensor).
Tensor sum(const Tensor& x);
/// Sum over `axes` (negative allowed); keepdims leaves them as size 1.
Tensor sum(const Tensor& x, const std::vector<int>& axes, bool keepdims = false);
/// Maximum along `axis`; the gradient goes to the first maximal element. A NaN counts as the largest
/// value: a lane with a NaN has NaN as its maximum (PyTorch's and NumPy's rule), and min alike.
Tensor max(const Tensor& x, int axis, bool keepdims = false);

// ---- primitives: indexing ----
/// Picks slices of x along `axis` by index (an embedding lookup is index_select(W, 0, ids)).
Tensor index_select(const Tensor& x, int axis, const Indices& indices);
/// The adjoint of index_select: zeros of `shape` with g's slices added at `indices` along `axis`.
Tensor index_add(const Tensor& g, const Shape& shape, int axis, const Indices& indices);
/// out[..i..] = x[..index[..i..]..] along `axis` (PyTorch's gather); `index` has `index_shape`,
/// which matches x's except along `axis`.
Tensor gather(const Tensor& x, int axis, const Indices& index, const Shape& index_shape);
/// The adjoint of gather: zeros of `shape` with g added at the gathered positions.
Tensor scatter_add(const Tensor& g, const Shape& shape, int axis, const Indices& index, const Shape& index_shape);

// ---- compositions (no backward of their own) ----
/// Sums a broadcast gradient back to `shape` (the one helper every broadcasting op's backward uses).
Tensor sum_to_shape(const Tensor& g, const Shape& shape);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, const std::vector<int>& axes, bool keepdims = false);
Tensor min(const Tensor& x, int axis, bool keepdims = false);
Tensor square(const Tensor& x);
/// Swaps the last two axes.
Tensor transpose(const Tensor& x);
/// Inserts a size-1 axis at `axis` (a view, as reshape).
Tensor unsqueeze(const Tensor& x, int axis);
/// Removes size-1 axis `axis` (a view, as reshape).
Tensor squeeze(const Tensor& x, int axis);
/// log Σ exp(x) along `axis`, stable for large |x|; −inf for a lane of −inf, +inf for a lane holding
/// +inf (as PyTorch).
Tensor logsumexp(const Tensor& x, int axis, bool keepdims = false);
Tensor softmax(const Tensor& x, int axis = -1);
Tensor log_softmax(const Tensor& x, int axis = -1);
/// log(1 + exp(x)), stable.
Tensor softplus(const Tensor& x);
/// log σ(x), stable.
Tensor log_sigmoid(const Tensor& x);
/// Pieces of the given sizes along `axis` (slices: views along the leading axis).
std::vector<Tensor> split(const Tensor& x, const std::vector<std::size_t>& sizes, int axis = 0);
/// n nearly equal pieces along `axis` (the last may be smaller), like torch.chunk.
std::vector<Tensor> chunk(const Tensor& x, std::size_t n, int axis = 0);
/// x where mask is 0, `value` where mask ≠ 0 (mask broadcasts; it is a constant).
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);
/// Largest element of x, as a 0-d tensor (max over every axis; a NaN is the largest). The gradient is
/// shared equally by the elements equal to it (by the NaNs when it is NaN), as PyTorch's torch.max(x);
/// max(x, axis) instead gives it to the first maximal element, as torch.max(x, dim).
Tensor max(const Tensor& x);
/// Smallest element of x, as a 0-d tensor; its gradient shared equally by the minimal elements, as max(x).
Tensor min(const Tensor& x);

// ---- where the extremes are, and comparisons: constants, nothing recorded ----
/// Flat (row-major) index of the first largest element of x. A NaN counts as the largest (and the
/// smallest) value: the first NaN is the answer if there is one (NumPy's and PyTorch's rule).
std::int64_t argmax(const Tensor& x);
/// Flat (row-major) index of the first smallest element of x (the first NaN if there is one).
std::int64_t argmin(const Tensor& x);
/// For every position of the other axes, the index along `axis` of the first largest element: the
/// lanes in row-major order of x's shape without `axis` (keepdims changes nothing but the reading: the
/// same values for that shape with `axis` as 1). Negative `axis` counts from the end.
Indices argmax(const Tensor& x, int axis);
/// As argmax(x, axis), for the first smallest element.
Indices argmin(const Tensor& x, int axis);
/// a < b element-wise with broadcasting: 1 where it holds, 0 elsewhere, in the operands' dtype; a
/// constant (no gradient flows through a comparison). A NaN compares false (but ne: true), as IEEE does.
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);  ///< a ≤ b, as lt
Tensor gt(const Tensor& a, const Tensor& b);  ///< a > b, as lt
Tensor ge(const Tensor& a, const Tensor& b);  ///< a ≥ b, as lt
Tensor eq(const Tensor& a, const Tensor& b);  ///< a = b, as lt
Tensor ne(const Tensor& a, const Tensor& b);  ///< a ≠ b, as lt (true where either is NaN)
Tensor lt(const Tensor& a, double b);  ///< a < b for a number b (in a's dtype), as lt
Tensor le(const Tensor& a, double b);  ///< a ≤ b for a number b
Tensor gt(const Tensor& a, double b);  ///< a > b for a number b
Tensor ge(const Tensor& a, double b);  ///< a ≥ b for a number b
Tensor eq(const Tensor& a, double b);  ///< a = b for a number b
Tensor ne(const Tensor& a, double b);  ///< a ≠ b for a number b

// ---- operators ----
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& x);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);

}  // namespace rwd
