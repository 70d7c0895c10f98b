// rewind/kernels/copy.hpp — strided copies: permute, broadcast, slice and its adjoint, the pieces of
// concat and stack, gather/scatter_add, index_select/index_add, and casts between dtypes
// (library-internal).
//
// Most of these see a shape as (outer, n, inner) around one axis (AxisSplit): element [o, i, r] sits
// at (o·n + i)·inner + r, so a slice, a piece of a concat or a selected index is `outer` blocks of
// `inner` contiguous elements. The loops on raw pointers take the split and go over o in [o0, o1)
// (and split that work across threads, below). The Tensor functions allocate the output and call one
// loop.
// Indices are checked by the ops (in range) before they reach these loops.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../core/detail/impl.hpp"
#include "loops.hpp"
#include "pool.hpp"
#include "simd.hpp"

namespace rwd::kernels {

/// A shape seen as (outer, n, inner) around one axis: element [o, i, r] sits at (o·n + i)·inner + r.
struct AxisSplit {
  std::size_t outer = 1, n = 1, inner = 1;
};
inline AxisSplit split_at(const Shape& s, std::size_t axis) {
  AxisSplit a;
  for (std::size_t i = 0; i < s.ndim(); ++i) {
    if (i < axis) a.outer *= s[i];
    else if (i > axis) a.inner *= s[i];
    else a.n = s[i];
  }
  return a;
}

// ---- loops on raw pointers ----

/// dst[0, n) += src[0, n): a short run element by element, a long one by simd::binary (the CPU's
/// widest vectors; an add rounds the same either way). A step's block of columns of a sequence's input
/// projection is such a run per row, in the backward.
template <class T>
inline void add_run(const T* src, std::size_t n, T* dst) {
  if (n < 16) {
    for (std::size_t i = 0; i < n; ++i) dst[i] += src[i];
  } else {
    simd::binary(Binary::add, dst, src, dst, n);
  }
}

/// dst[0, n) = src[0, n): a short run element by element (no call), a long one by std::copy (memmove).
template <class T>
inline void copy_run(const T* src, std::size_t n, T* dst) {
  if (n <= 16) {
    for (std::size_t i = 0; i < n; ++i) dst[i] = src[i];
  } else {
    std::copy(src, src + n, dst);
  }
}
//
// Each splits across threads (pool.hpp) when large enough, at any element: the blocks of `inner`
// elements are cut by for_blocks (loops.hpp), so a slice of one block (outer 1, a gate's rows) splits
// as well as many small ones. An accumulating loop (slice_add, scatter_add, index_add) splits only
// where its targets cannot meet: slice_add's targets are distinct for distinct (o, i); scatter_add's
// and index_add's may repeat along the axis, so they split over (o, r) and each thread adds along the
// axis in the order one thread would.

/// out (contiguous, shape `so`)[i] = in[Σ i_d · in_strides[d]]: a permuted, strided or broadcast
/// (stride 0) copy.
template <class T>
void strided_copy(const Shape& so, const T* in, const std::ptrdiff_t* in_strides, T* out) {
  std::ptrdiff_t full[2][Shape::max_dims] = {};
  std::ptrdiff_t stride = 1;
  for (std::size_t d = so.ndim(); d-- > 0;) {
    full[0][d] = so[d] == 1 ? 0 : stride;
    full[1][d] = so[d] == 1 ? 0 : in_strides[d];
    stride *= static_cast<std::ptrdiff_t>(so[d]);
  }
  const LoopPlan p = plan_loops(so, full, 2);
  parallel_runs<2>(p, grain_cheap, [&](const std::ptrdiff_t* off, std::size_t n, const std::ptrdiff_t* s) {
    T* o = out + off[0];
    const T* v = in + off[1];
    if (s[1] == 1)
      for (std::size_t i = 0; i < n; ++i) o[i] = v[i];
    else if (s[1] == 0)
      std::fill(o, o + n, *v);
    else
      for (std::size_t i = 0; i < n; ++i) o[i] = v[i * s[1]];
  });
}

/// part = full[…, start : start + count·step : step, …] along the axis split by f (part: count
/// along it). For o in [o0, o1).
template <class T>
void slice_copy(const T* full, T* part, const AxisSplit& f, std::size_t start, std::size_t count, std::size_t step,
                std::size_t o0, std::size_t o1) {
  // With step 1 an o's `count` blocks are one run in both tensors: copied as runs of count·inner, not
  // count runs of inner (a column slice, inner 1, would otherwise copy one element per call).
  const std::size_t run = step == 1 ? count * f.inner : f.inner, runs = step == 1 ? 1 : count;
  parallel_for((o1 - o0) * runs * run, grain_cheap, [&](std::size_t b, std::size_t e) {
    for_blocks(b, e, runs, run, [&](std::size_t o, std::size_t i, std::size_t r0, std::size_t r1) {
      o += o0;
      copy_run(full + (o * f.n + start + i * step) * f.inner + r0, r1 - r0, part + (o * runs + i) * run + r0);
    });
  });
}

/// full[…, start : start + count·step : step, …] += part: slice's adjoint, in place. For o in [o0, o1).
template <class T>
void slice_add(T* full, const T* part, const AxisSplit& f, std::size_t start, std::size_t count, std::size_t step,
               std::size_t o0, std::size_t o1) {
  const std::size_t run = step == 1 ? count * f.inner : f.inner, runs = step == 1 ? 1 : count;  // as slice_copy
  parallel_for((o1 - o0) * runs * run, grain_cheap, [&](std::size_t b, std::size_t e) {
    for_blocks(b, e, runs, run, [&](std::size_t o, std::size_t i, std::size_t r0, std::size_t r1) {
      o += o0;
      T* dst = full + (o * f.n + start + i * step) * f.inner + r0;
      const T* src = part + (o * runs + i) * run + r0;
      add_run(src, r1 - r0, dst);
    });
  });
}

/// For o in [o0, o1): dst[o·dst_block + offset, + src_block) = src[o·src_block, + src_block) — one
/// piece of a concat (blocks n·inner into N·inner at offset·inner) or a stack (inner into N·inner).
template <class T>
void place_blocks(const T* src, std::size_t src_block, T* dst, std::size_t dst_block, std::size_t offset,
                  std::size_t o0, std::size_t o1) {
  parallel_for((o1 - o0) * src_block, grain_cheap, [&](std::size_t b, std::size_t e) {
    for_blocks(b, e, 1, src_block, [&](std::size_t o, std::size_t, std::size_t r0, std::size_t r1) {
      o += o0;
      copy_run(src + o * src_block + r0, r1 - r0, dst + o * dst_block + offset + r0);
    });
  });
}

/// out[o, j, r] = x[o, index[o, j, r], r] (out split by fi, x has n along the axis). For o in [o0, o1).
template <class T>
void gather(const T* x, std::size_t n, const std::int64_t* index, const AxisSplit& fi, T* out, std::size_t o0,
            std::size_t o1) {
  parallel_for((o1 - o0) * fi.n * fi.inner, grain_cheap, [&](std::size_t b, std::size_t e) {
    for_blocks(b, e, fi.n, fi.inner, [&](std::size_t o, std::size_t j, std::size_t r0, std::size_t r1) {
      o += o0;
      for (std::size_t r = r0; r < r1; ++r) {
        const std::size_t at = (o * fi.n + j) * fi.inner + r;
        out[at] = x[(o * n + static_cast<std::size_t>(index[at])) * fi.inner + r];
      }
    });
  });
}

/// out[o, index[o, j, r], r] += g[o, j, r] (gather's adjoint; g split by fi, out has n along the axis).
template <class T>
void scatter_add(const T* g, const std::int64_t* index, const AxisSplit& fi, T* out, std::size_t n, std::size_t o0,
                 std::size_t o1) {
  parallel_for((o1 - o0) * fi.inner, std::max<std::size_t>(1, grain_cheap / std::max<std::size_t>(fi.n, 1)),
               [&](std::size_t b, std::size_t e) {
                 for_blocks(b, e, 1, fi.inner, [&](std::size_t o, std::size_t, std::size_t r0, std::size_t r1) {
                   o += o0;
                   for (std::size_t j = 0; j < fi.n; ++j)
                     for (std::size_t r = r0; r < r1; ++r) {
                       const std::size_t at = (o * fi.n + j) * fi.inner + r;
                       out[(o * n + static_cast<std::size_t>(index[at])) * fi.inner + r] += g[at];
                     }
                 });
               });
}

/// out[o, j, :] = x[o, indices[j], :] for j < k (x split by f). For o in [o0, o1).
template <class T>
void index_select(const T* x, const AxisSplit& f, const std::int64_t* indices, std::size_t k, T* out, std::size_t o0,
                  std::size_t o1) {
  if (f.inner == 1) {  // along the last axis (a batch's columns picked from a dataset): one gather a row
    parallel_for((o1 - o0) * k, grain_cheap, [&](std::size_t b, std::size_t e) {
      for (std::size_t t = b; t < e;) {
        const std::size_t o = o0 + t / k, j0 = t % k, j1 = std::min(k, j0 + (e - t));
        const T* src = x + o * f.n;
        T* dst = out + o * k;
        for (std::size_t j = j0; j < j1; ++j) dst[j] = src[static_cast<std::size_t>(indices[j])];
        t += j1 - j0;
      }
    });
    return;
  }
  parallel_for((o1 - o0) * k * f.inner, grain_cheap, [&](std::size_t b, std::size_t e) {
    for_blocks(b, e, k, f.inner, [&](std::size_t o, std::size_t j, std::size_t r0, std::size_t r1) {
      o += o0;
      const T* src = x + (o * f.n + static_cast<std::size_t>(indices[j])) * f.inner;
      copy_run(src + r0, r1 - r0, out + (o * k + j) * f.inner + r0);
    });
  });
}

/// out[o, indices[j], :] += g[o, j, :] for j < k (index_select's adjoint; out split by f). For o in
/// [o0, o1).
template <class T>
void index_add(const T* g, const std::int64_t* indices, std::size_t k, const AxisSplit& f, T* out, std::size_t o0,
               std::size_t o1) {
  parallel_for((o1 - o0) * f.inner, std::max<std::size_t>(1, grain_cheap / std::max<std::size_t>(k, 1)),
               [&](std::size_t b, std::size_t e) {
                 for_blocks(b, e, 1, f.inner, [&](std::size_t o, std::size_t, std::size_t r0, std::size_t r1) {
                   o += o0;
                   for (std::size_t j = 0; j < k; ++j) {
                     const T* src = g + (o * k + j) * f.inner;
                     T* dst = out + (o * f.n + static_cast<std::size_t>(indices[j])) * f.inner;
                     for (std::size_t r = r0; r < r1; ++r) dst[r] += src[r];
                   }
                 });
               });
}

/// out[i] = To(in[i]) for i in [0, n) (float ↔ double: exact one way, rounded to nearest the other).
template <class From, class To>
void convert(const From* in, To* out, std::size_t n) {
  parallel_for(n, grain_cheap, [&](std::size_t b, std::size_t e) {
    for (std::size_t i = b; i < e; ++i) out[i] = static_cast<To>(in[i]);
  });
}

// ---- on tensors: a new output, one loop ----

/// y (shape so) with y.shape[i] = x.shape[perm[i]], y[…] = x[…] with the axes reordered.
Tensor permute(const char* op, const Tensor& x, const std::vector<std::size_t>& perm);
/// x repeated along its size-1 (and missing leading) dimensions up to `shape` (checked by the op).
Tensor broadcast_to(const char* op, const Tensor& x, const Shape& shape);
/// x[…, start : start + count·step : step, …] along `axis`.
Tensor slice(const char* op, const Tensor& x, std::size_t axis, std::size_t start, std::size_t count, std::size_t step);
/// Zeros of `shape` with g placed at [start : start + count·step : step] along `axis` (slice's adjoint).
Tensor unslice(const char* op, const Tensor& g, const Shape& shape, std::size_t axis, std::size_t start,
               std::size_t count, std::size_t step);
/// The tensors (same dtype, equal but along `axis`) joined along `axis` into shape `so`.
Tensor concat(const char* op, const std::vector<Tensor>& xs, std::size_t axis, const Shape& so);
/// The tensors (same shape and dtype) stacked along a new axis `axis` of `so`.
Tensor stack(const char* op, const std::vector<Tensor>& xs, std::size_t axis, const Shape& so);
/// y (index_shape) with y[…, j, …] = x[…, index[…, j, …], …] along `axis`.
Tensor gather(const char* op, const Tensor& x, std::size_t axis, const std::int64_t* index, const Shape& index_shape);
/// Zeros of `shape` with g (index_shape) added at x[…, index[…, j, …], …] along `axis`.
Tensor scatter_add(const char* op, const Tensor& g, const Shape& shape, std::size_t axis, const std::int64_t* index);
/// x[…, indices, …] along `axis` (k indices).
Tensor index_select(const char* op, const Tensor& x, std::size_t axis, const std::int64_t* indices, std::size_t k);
/// Zeros of `shape` with g's slices added at the k indices along `axis`.
Tensor index_add(const char* op, const Tensor& g, const Shape& shape, std::size_t axis, const std::int64_t* indices,
                 std::size_t k);
/// x converted to `dtype` (a new tensor, also when x already has it).
Tensor cast(const char* op, const Tensor& x, Dtype dtype);

}  // namespace rwd::kernels
