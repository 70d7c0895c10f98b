// rewind/kernels/packed.hpp — products with a weight packed once and reused, step after step
// (library-internal).
//
// A recurrent layer multiplies the same weight by a new operand at every step: W_hh·hₜ in the forward,
// W_hhᵀ·dGₜ in the backward. OpenBLAS copies ("packs") both operands into its kernel's layout at every
// call: all of W (1 MiB for lstm_medium's W_hh) for a 64-column product, 9% of lstm_medium's training
// step at 1 thread (perf: sgemm_oncopy/otcopy/incopy/itcopy) — and when the product is split across
// threads, each block packs the whole of the other operand again. Here W is packed once, in a
// PackScope (a sequence's forward: run_sequence; a backward sweep), into panels of kPackRows rows, and
// every use runs rewind's own AVX-512 kernel over the panels and the other operand as it lies (row-
// major, read from cache). On this Zen 5 core: lstm_medium's W_hh·h 125 µs against OpenBLAS's 148,
// W_hhᵀ·dG 125 against 153, lstm_large's 505 / 496 against 567 / 616 (packing excluded: it costs
// one product's time, once a sequence).
//
// When it applies (packed_product): a float32 left operand of at least kPackMinWeight elements that is
// a leaf — not recorded on a tape: a parameter, stable for the scope's life — used a second time in
// the scope (a one-off product goes to OpenBLAS as before), the right operand not transposed and at
// least 16 columns wide, rewind's packed products on (rwd::set_packed_weights, core/blas.hpp) and
// AVX-512F on this CPU. A copy is made again when a user's code has written any tensor's values since
// (detail::user_writes: Tensor::data() non-const, assign, fill), so a weight changed in place inside a
// sequence — a custom cell scaling its matrix between steps — is multiplied by its new values; only a
// write through a pointer taken before the scope began goes unseen. Uses are counted per nested scope
// and a copy serves a first use only while the scope that made it is open (kernels/packed.cpp), so a
// sequence re-run inside another scope (a checkpoint's, in the backward sweep) makes the same choices,
// step by step, as its first run. Split across the
// pool by panels; each element of the result is one sum over the inner dimension in order, so the
// bits are the same at every thread count (OpenBLAS's differ within float rounding: blocks of the inner
// dimension, small-matrix kernels).
#pragma once

#include <cstddef>
#include <cstdint>

#include "../core/tensor.hpp"

namespace rwd::kernels {

/// Rows of a packed panel: the kernel's tile is this many rows by up to 64 columns (24 of the 32
/// AVX-512 registers accumulate).
inline constexpr std::size_t kPackRows = 6;

/// The smallest weight (m·k elements, 16 KiB of float32) whose products run packed:
/// below it OpenBLAS's small-matrix kernels are as quick and there is little to pack (sine_epoch's
/// 20×20 W_hh: 0.1 µs a product either way; its 20×1 input weight 1.3 µs packed against 1.0).
inline constexpr std::size_t kPackMinWeight = 4096;

/// While one lives on a thread, products there may use packed copies of their leaf left operands;
/// the copies go with the outermost scope. Nested scopes share the outer one's copies.
class PackScope {
 public:
  PackScope();
  ~PackScope();
  PackScope(const PackScope&) = delete;
  PackScope& operator=(const PackScope&) = delete;
};

/// c (m × n, row stride ldc) = op(a)·b, plus c when `accumulate`, by the packed kernel, where it
/// applies (see above): op(a) (m × k; a's transpose with `ta`), b (k × n, row stride ldb), float32.
/// False where it does not: the caller runs its own product.
bool packed_product(const Tensor& a, bool ta, const float* b, std::size_t ldb, float* c, std::size_t ldc,
                    std::size_t m, std::size_t n, std::size_t k, bool accumulate);

/// Whether this CPU runs the packed kernel (AVX-512F).
bool packed_kernel_available();

/// How many products ran packed so far on any thread (tests: the proof that a path took it).
std::uint64_t packed_products();

/// Packed copies held on this thread now (tests: none once the outermost scope has ended).
std::size_t packed_copies();

namespace avx512 {
/// Packs op(a) (m × k) into ⌈m / kPackRows⌉ panels at `out`: panel p holds rows p·kPackRows … of
/// op(a) as k groups of kPackRows values (zero past row m).
void pack(const float* a, std::size_t lda, bool ta, std::size_t m, std::size_t k, float* out);
/// Panels [p0, p1) of the product: rows p·kPackRows … of c = panels·b (+ c).
void run_panels(const float* packed, std::size_t p0, std::size_t p1, std::size_t m, std::size_t k, const float* b,
                std::size_t ldb, float* c, std::size_t ldc, std::size_t n, bool accumulate);
}  // namespace avx512

}  // namespace rwd::kernels
