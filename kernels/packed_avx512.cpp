// The packed kernel of packed.hpp, for AVX-512F (this file alone is built with -O3 -mavx512f -mfma:
// the tile's loops must unroll fully for its accumulators to stay in registers — at -O2 it ran at a
// third of the speed; packed.cpp calls it only on a CPU that has AVX-512F).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "packed.hpp"

namespace rwd::kernels::avx512 {

namespace {

constexpr int MR = static_cast<int>(kPackRows);

// One tile: rows [0, MR) of a panel times columns [0, 16·NV) of b (the last vector masked by `last`),
// over the whole inner dimension, into c (row stride ldc), added to c when `accumulate`.
template <int NV>
[[gnu::always_inline]] inline void tile(const float* ap, const float* b, std::size_t ldb, float* c, std::size_t ldc,
                                        std::size_t k, __mmask16 last, bool accumulate) {
  __m512 acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  for (std::size_t p = 0; p < k; ++p) {
    __m512 bv[NV];
    for (int v = 0; v < NV; ++v)
      bv[v] = v == NV - 1 ? _mm512_maskz_loadu_ps(last, b + p * ldb + 16 * v) : _mm512_loadu_ps(b + p * ldb + 16 * v);
    for (int i = 0; i < MR; ++i) {
      const __m512 a = _mm512_set1_ps(ap[p * MR + i]);
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(a, bv[v], acc[i][v]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) {
      float* out = c + i * ldc + 16 * v;
      const __mmask16 m = v == NV - 1 ? last : __mmask16(0xFFFF);
      __m512 x = acc[i][v];
      if (accumulate) x = _mm512_add_ps(_mm512_maskz_loadu_ps(m, out), x);
      _mm512_mask_storeu_ps(out, m, x);
    }
}

}  // namespace

void pack(const float* a, std::size_t lda, bool ta, std::size_t m, std::size_t k, float* out) {
  for (std::size_t r0 = 0; r0 < m; r0 += MR) {
    float* dst = out + r0 * k;
    const std::size_t rows = std::min<std::size_t>(MR, m - r0);
    for (std::size_t p = 0; p < k; ++p) {
      float* d = dst + p * MR;
      std::size_t i = 0;
      if (ta)
        for (; i < rows; ++i) d[i] = a[p * lda + r0 + i];
      else
        for (; i < rows; ++i) d[i] = a[(r0 + i) * lda + p];
      for (; i < static_cast<std::size_t>(MR); ++i) d[i] = 0.0f;
    }
  }
}

void run_panels(const float* packed, std::size_t p0, std::size_t p1, std::size_t m, std::size_t k, const float* b,
                std::size_t ldb, float* c, std::size_t ldc, std::size_t n, bool accumulate) {
  alignas(64) float spare[MR * 64];  // a last panel's rows past m: computed here, not written
  for (std::size_t p = p0; p < p1; ++p) {
    const float* ap = packed + p * MR * k;
    const std::size_t r0 = p * MR, rows = std::min<std::size_t>(MR, m - r0);
    for (std::size_t j = 0; j < n; j += 64) {
      const std::size_t cols = std::min<std::size_t>(64, n - j);
      const int nv = static_cast<int>((cols + 15) / 16);
      const __mmask16 last = cols % 16 ? __mmask16((1u << (cols % 16)) - 1) : __mmask16(0xFFFF);
      float* out = c + r0 * ldc + j;
      std::size_t ld = ldc;
      if (rows < static_cast<std::size_t>(MR)) {  // a short last panel: through the spare rows
        out = spare;
        ld = 64;
        if (accumulate)
          for (std::size_t i = 0; i < rows; ++i) std::memcpy(spare + i * 64, c + (r0 + i) * ldc + j, cols * sizeof(float));
      }
      switch (nv) {
        case 4: tile<4>(ap, b + j, ldb, out, ld, k, last, accumulate); break;
        case 3: tile<3>(ap, b + j, ldb, out, ld, k, last, accumulate); break;
        case 2: tile<2>(ap, b + j, ldb, out, ld, k, last, accumulate); break;
        default: tile<1>(ap, b + j, ldb, out, ld, k, last, accumulate); break;
      }
      if (out == spare)
        for (std::size_t i = 0; i < rows; ++i) std::memcpy(c + (r0 + i) * ldc + j, spare + i * 64, cols * sizeof(float));
    }
  }
}

}  // namespace rwd::kernels::avx512
