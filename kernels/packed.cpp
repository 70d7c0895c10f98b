// The packed products of packed.hpp: the scope's copies, and the split of a product across the pool.
#include "packed.hpp"

#include <algorithm>
#include <atomic>
#include <memory>
#include <vector>

#include "../core/blas.hpp"
#include "../core/detail/blas.hpp"
#include "../core/detail/impl.hpp"
#include "../core/threads.hpp"
#include "gemm.hpp"
#include "pool.hpp"

namespace rwd::kernels {

namespace {

// A leaf operand seen in the scope: how often, and its packed copy from the second use on.
//
// Whether a product runs packed depends only on the scope it runs in and those around it, never on a
// scope that has ended: the uses are counted per level (uses[d − 1] at depth d; a nested scope counts
// from zero), and a copy serves a first use only while the level that made it (`owner`) is open. So a
// run_sequence makes the same choices, step by step, wherever it runs — in the forward, or re-run by a
// checkpoint inside the backward sweep's scope after an earlier piece's re-run packed the weight
// (which ran that piece's first step packed where the forward had run it on OpenBLAS: other bits, and
// checkpoint refuses a re-run that differs from the first run). A copy whose level has ended stays as
// a cache (no second packing of the same values) until the outermost scope ends.
struct Entry {
  std::shared_ptr<detail::TensorImpl> leaf;  // held: its address is not reused while the scope lives
  const float* data;                         // where its values were when packed
  std::uint64_t writes;                      // detail::user_writes() when packed
  bool ta;
  std::vector<int> uses;  // per open scope level, outermost first
  int owner = 0;          // the level whose uses made `packed`; 0 when that level has ended (or none)
  Tensor packed;  // ⌈m / kPackRows⌉·kPackRows·k values (packed.hpp); from this thread's buffer cache
};

// The scopes on this thread: how deep, and the outermost one's entries (a few: one per weight and
// transpose flag of the layer running).
struct Scopes {
  int depth = 0;
  std::vector<Entry> entries;
};
thread_local Scopes t_scopes;

std::atomic<std::uint64_t> g_packed{0};

// AVX-512F, as blas_info() reads it (core/detail/blas.hpp), once.
bool cpu_has_avx512f() {
  static const bool has = detail::cpu_vectors().avx512f;
  return has;
}

}  // namespace

PackScope::PackScope() { ++t_scopes.depth; }

PackScope::~PackScope() {
  const int depth = --t_scopes.depth;
  if (depth == 0) {
    t_scopes.entries.clear();
    return;
  }
  // This level's counts go with it, and its copies serve no first use any more (kept as a cache).
  for (Entry& e : t_scopes.entries) {
    if (e.uses.size() > static_cast<std::size_t>(depth)) e.uses.resize(static_cast<std::size_t>(depth));
    if (e.owner > depth) e.owner = 0;
  }
}

bool packed_kernel_available() { return cpu_has_avx512f(); }

std::uint64_t packed_products() { return g_packed.load(std::memory_order_relaxed); }

std::size_t packed_copies() {
  std::size_t n = 0;
  for (const Entry& e : t_scopes.entries) n += e.packed.defined();
  return n;
}

bool packed_product(const Tensor& a, bool ta, const float* b, std::size_t ldb, float* c, std::size_t ldc,
                    std::size_t m, std::size_t n, std::size_t k, bool accumulate) {
  if (t_scopes.depth == 0 || n < 16 || m * k < kPackMinWeight) return false;
  const std::shared_ptr<detail::TensorImpl>& impl = a.impl_ptr();
  if (!impl || impl->tape || impl->dtype() != Dtype::f32 || !packed_weights() || !cpu_has_avx512f()) return false;
  const float* data = detail::data<float>(a, "matmul");
  Entry* e = nullptr;
  for (Entry& x : t_scopes.entries)
    if (x.leaf == impl && x.ta == ta) e = &x;
  if (!e) e = &t_scopes.entries.emplace_back(Entry{impl, data, 0, ta, {}, 0, Tensor()});
  e->uses.resize(static_cast<std::size_t>(t_scopes.depth));  // levels opened since its last use: from zero
  const bool serves = e->owner != 0;                         // made by this level or one around it
  if (++e->uses.back() < 2 && !serves) return false;         // a one-off product is not worth the packing
  if (!serves) e->owner = t_scopes.depth;
  const std::size_t panels = (m + kPackRows - 1) / kPackRows;
  // Packed again when the weight may have been written since (a user's write anywhere, in place: a
  // custom cell scaling its matrix between steps) or its values moved.
  const std::uint64_t writes = detail::user_writes();
  if (!e->packed.defined() || e->data != data || e->writes != writes) {
    e->packed = detail::empty_tensor(Shape{panels * kPackRows * k}, Dtype::f32);
    e->data = data;
    e->writes = writes;
    // a is (m × k), or (k × m) read transposed; its row stride is its last dimension.
    avx512::pack(data, ta ? m : k, ta, m, k, detail::data_mut<float>(e->packed, "matmul"));
  }
  const float* packed = detail::data<float>(e->packed, "matmul");
  // Panels across the pool, each chunk at least kSplitWork multiply-adds (gemm.hpp); inline inside a
  // pool task (a bidirectional layer's direction) or when small.
  const std::size_t per_panel = kPackRows * n * k;
  const std::size_t grain = split_grain(per_panel);
  const bool split = get_num_threads() > 1 && !inside_pool() && panels >= 2 * grain;
  auto run = [&] {
    if (split)
      parallel_for(panels, grain, [&](std::size_t p0, std::size_t p1) {
        avx512::run_panels(packed, p0, p1, m, k, b, ldb, c, ldc, n, accumulate);
      });
    else
      avx512::run_panels(packed, 0, panels, m, k, b, ldb, c, ldc, n, accumulate);
  };
  if (profiling()) {  // timed as a product, its split loop not counted as a loop (gemm.cpp does the same)
    const ProductScope scope;
    const std::uint64_t t0 = now_ns();
    run();
    count_product(now_ns() - t0, split);
  } else {
    run();
  }
  g_packed.fetch_add(1, std::memory_order_relaxed);
  return true;
}

}  // namespace rwd::kernels
