// The kernel layer (kernels/, library-internal) tested directly: each loop against an index-by-index
// reference on random shapes — broadcast patterns, size-1 and zero-size dimensions, both dtypes.
// The op tests reach these loops too, but only through the shapes the ops happen to pass them.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <limits>
#include <random>
#include <vector>

#include "core/threads.hpp"
#include "kernels/copy.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/gemm.hpp"
#include "kernels/reduce.hpp"
#include "kernels/simd.hpp"

using namespace rwd;

namespace {

std::mt19937 rng(20261130);

std::size_t pick(std::size_t lo, std::size_t hi) { return std::uniform_int_distribution<std::size_t>(lo, hi)(rng); }

// Small integers: sums and products of them are exact in float32, so every comparison below is ==.
template <class T>
std::vector<T> values(std::size_t n) {
  std::vector<T> v(n);
  for (T& x : v) x = static_cast<T>(static_cast<int>(pick(0, 14)) - 7);
  return v;
}

// A random shape of 0–4 dimensions of sizes 0–4 (size 0 one time in ten).
Shape random_shape(std::size_t max_dims = 4) {
  Shape s;
  const std::size_t nd = pick(0, max_dims);
  for (std::size_t d = 0; d < nd; ++d) s.push_back(pick(0, 9) == 0 ? 0 : pick(1, 4));
  return s;
}

// An operand shape that broadcasts to `out`: some leading dimensions dropped, some others set to 1.
Shape broadcast_from(const Shape& out) {
  const std::size_t drop = pick(0, out.ndim());
  Shape s;
  for (std::size_t d = drop; d < out.ndim(); ++d) s.push_back(pick(0, 2) == 0 ? 1 : out[d]);
  return s;
}

// Row-major multi-index of flat position i in `s`.
std::vector<std::size_t> unravel(std::size_t i, const Shape& s) {
  std::vector<std::size_t> idx(s.ndim());
  for (std::size_t d = s.ndim(); d-- > 0;) {
    idx[d] = i % s[d];
    i /= s[d];
  }
  return idx;
}

// Flat position in operand shape `s` (right-aligned, broadcast) of output multi-index `idx`.
std::size_t broadcast_at(const std::vector<std::size_t>& idx, const Shape& s) {
  std::size_t at = 0;
  const std::size_t lead = idx.size() - s.ndim();
  for (std::size_t d = 0; d < s.ndim(); ++d) at = at * s[d] + (s[d] == 1 ? 0 : idx[lead + d]);
  return at;
}

template <class T>
Tensor tensor_of(const std::vector<T>& v, const Shape& s) {
  return Tensor::from_vector(std::vector<double>(v.begin(), v.end()), s, detail::dtype_of<T>());
}

template <class T>
std::vector<T> values_of(const Tensor& t) {
  const T* p = t.data<T>();
  return std::vector<T>(p, p + t.numel());
}

}  // namespace

TEST_CASE_TEMPLATE("kernels: map_broadcast and select match index-by-index broadcasting", T, float, double) {
  for (int trial = 0; trial < 300; ++trial) {
    const Shape so = random_shape();
    const Shape sa = broadcast_from(so), sb = broadcast_from(so), sc = broadcast_from(so);
    const auto a = values<T>(sa.numel()), b = values<T>(sb.numel()), c = values<T>(sc.numel());
    std::vector<T> out(so.numel()), sel(so.numel());
    kernels::map_broadcast<T>(so, a.data(), sa, b.data(), sb, out.data(), [](T x, T y) { return 2 * x - y; });
    kernels::select<T>(so, c.data(), sc, a.data(), sa, b.data(), sb, sel.data());
    for (std::size_t i = 0; i < so.numel(); ++i) {
      const auto idx = unravel(i, so);
      const T x = a[broadcast_at(idx, sa)], y = b[broadcast_at(idx, sb)];
      INFO(so.str() << " from " << sa.str() << " and " << sb.str() << " at " << i);
      CHECK(out[i] == 2 * x - y);
      CHECK(sel[i] == (c[broadcast_at(idx, sc)] != 0 ? x : y));
    }
  }
}

TEST_CASE_TEMPLATE("kernels: sum_into and max match a reference over random axes", T, float, double) {
  for (int trial = 0; trial < 300; ++trial) {
    const Shape sx = random_shape();
    Shape kept = sx;
    for (std::size_t d = 0; d < sx.ndim(); ++d)
      if (pick(0, 1)) kept[d] = 1;
    const auto x = values<T>(sx.numel());
    std::vector<T> out(kept.numel(), T(0)), ref(kept.numel(), T(0));
    kernels::sum_into<T>(x.data(), sx, out.data(), kept);
    for (std::size_t i = 0; i < sx.numel(); ++i) ref[broadcast_at(unravel(i, sx), kept)] += x[i];
    INFO(sx.str() << " summed to " << kept.str());
    CHECK(out == ref);
    // The tensor entry (its own loop where only axes of extent 1 are summed).
    CHECK(values_of<T>(kernels::sum("sum", tensor_of(x, sx), kept, kept)) == ref);

    if (sx.ndim() == 0 || sx.numel() == 0) continue;
    const std::size_t ax = pick(0, sx.ndim() - 1);
    Shape one = sx;
    one[ax] = 1;
    Tensor hot;
    const Tensor m = kernels::max("max", tensor_of(x, sx), ax, one, hot);
    std::vector<T> mref(one.numel()), href(sx.numel(), T(0));
    std::vector<std::size_t> best(one.numel(), 0);
    for (std::size_t i = 0; i < sx.numel(); ++i) {  // the first maximum of each lane
      const auto idx = unravel(i, sx);
      const std::size_t at = broadcast_at(idx, one);
      if (idx[ax] == 0 || x[i] > mref[at]) {
        mref[at] = x[i];
        best[at] = i;
      }
    }
    for (std::size_t b : best) href[b] = 1;
    CHECK(values_of<T>(m) == mref);
    CHECK(values_of<T>(hot) == href);
  }
  // Summing an axis of extent 1 away from a long tensor, split across two threads: the values as they were.
  set_num_threads(2);
  const auto x = values<T>(20001);
  CHECK(values_of<T>(kernels::sum("sum", tensor_of(x, Shape{20001, 1}), Shape{20001, 1}, Shape{20001})) == x);
  set_num_threads(1);
}

TEST_CASE_TEMPLATE("kernels: permute, broadcast_to, copy and cast match index-by-index copies", T, float, double) {
  for (int trial = 0; trial < 200; ++trial) {
    const Shape sx = random_shape();
    const auto x = values<T>(sx.numel());
    const Tensor tx = tensor_of(x, sx);
    // permute: y[j] = x[i] with y's index the permuted x index
    std::vector<std::size_t> perm(sx.ndim());
    for (std::size_t d = 0; d < perm.size(); ++d) perm[d] = d;
    std::shuffle(perm.begin(), perm.end(), rng);
    Shape sy;
    for (std::size_t k : perm) sy.push_back(sx[k]);
    const auto y = values_of<T>(kernels::permute("permute", tx, perm));
    REQUIRE(y.size() == sx.numel());
    for (std::size_t j = 0; j < y.size(); ++j) {
      const auto yi = unravel(j, sy);
      std::vector<std::size_t> xi(sx.ndim());
      for (std::size_t d = 0; d < perm.size(); ++d) xi[perm[d]] = yi[d];
      CHECK(y[j] == x[broadcast_at(xi, sx)]);
    }
    // broadcast_to: x taken as the operand of a larger shape
    const Shape so = random_shape();
    const Shape sb = broadcast_from(so);
    const auto b = values<T>(sb.numel());
    const auto z = values_of<T>(kernels::broadcast_to("broadcast_to", tensor_of(b, sb), so));
    REQUIRE(z.size() == so.numel());
    for (std::size_t i = 0; i < z.size(); ++i) CHECK(z[i] == b[broadcast_at(unravel(i, so), sb)]);
    // cast keeps the values in order
    const Tensor other = kernels::cast("cast", tx, detail::dtype_of<T>() == Dtype::f32 ? Dtype::f64 : Dtype::f32);
    CHECK(other.to_vector() == std::vector<double>(x.begin(), x.end()));
  }
  // float64 → float32 rounds to nearest
  const std::vector<double> d = {0.1, 1.0 / 3.0, 1e-40, -2.5};
  std::vector<float> f(d.size());
  kernels::convert(d.data(), f.data(), d.size());
  for (std::size_t i = 0; i < d.size(); ++i) CHECK(f[i] == static_cast<float>(d[i]));
}

TEST_CASE_TEMPLATE("kernels: slice, unslice, concat and stack match index-by-index copies", T, float, double) {
  for (int trial = 0; trial < 200; ++trial) {
    Shape sx = random_shape();
    if (sx.ndim() == 0) sx.push_back(pick(0, 4));
    const std::size_t ax = pick(0, sx.ndim() - 1);
    const std::size_t step = pick(1, 3), start = pick(0, sx[ax]), stop = pick(start, sx[ax]);
    const std::size_t count = stop > start ? (stop - start + step - 1) / step : 0;
    const auto x = values<T>(sx.numel());
    Shape sp = sx;
    sp[ax] = count;
    INFO(sx.str() << " [" << start << ":" << stop << ":" << step << "] along " << ax);
    const auto part = values_of<T>(kernels::slice("slice", tensor_of(x, sx), ax, start, count, step));
    REQUIRE(part.size() == sp.numel());
    for (std::size_t j = 0; j < part.size(); ++j) {
      auto idx = unravel(j, sp);
      idx[ax] = start + idx[ax] * step;
      CHECK(part[j] == x[broadcast_at(idx, sx)]);
    }
    // unslice: zeros of sx with part placed back; slice_add onto x adds it in place
    const auto full = values_of<T>(kernels::unslice("unslice", tensor_of(part, sp), sx, ax, start, count, step));
    std::vector<T> ref(sx.numel(), T(0)), added = x;
    for (std::size_t j = 0; j < part.size(); ++j) {
      auto idx = unravel(j, sp);
      idx[ax] = start + idx[ax] * step;
      ref[broadcast_at(idx, sx)] += part[j];
    }
    CHECK(full == ref);
    const kernels::AxisSplit f = kernels::split_at(sx, ax);
    kernels::slice_add(added.data(), part.data(), f, start, count, step, 0, f.outer);
    for (std::size_t i = 0; i < x.size(); ++i) CHECK(added[i] == x[i] + ref[i]);

    // concat of x with a tensor of another size along ax; stack of two of x's shape along a new axis
    Shape s2 = sx;
    s2[ax] = pick(0, 3);
    const auto x2 = values<T>(s2.numel());
    Shape sc = sx;
    sc[ax] += s2[ax];
    const auto cat = values_of<T>(kernels::concat("concat", {tensor_of(x, sx), tensor_of(x2, s2)}, ax, sc));
    REQUIRE(cat.size() == sc.numel());
    for (std::size_t i = 0; i < cat.size(); ++i) {
      auto idx = unravel(i, sc);
      if (idx[ax] < sx[ax]) {
        CHECK(cat[i] == x[broadcast_at(idx, sx)]);
      } else {
        idx[ax] -= sx[ax];
        CHECK(cat[i] == x2[broadcast_at(idx, s2)]);
      }
    }
    const std::size_t new_ax = pick(0, sx.ndim());
    Shape ss;
    for (std::size_t d = 0; d <= sx.ndim(); ++d) {
      if (d == new_ax) ss.push_back(2);
      if (d < sx.ndim()) ss.push_back(sx[d]);
    }
    const auto y = values<T>(sx.numel());
    const auto st = values_of<T>(kernels::stack("stack", {tensor_of(x, sx), tensor_of(y, sx)}, new_ax, ss));
    REQUIRE(st.size() == ss.numel());
    for (std::size_t i = 0; i < st.size(); ++i) {
      auto idx = unravel(i, ss);
      const std::size_t which = idx[new_ax];
      idx.erase(idx.begin() + static_cast<std::ptrdiff_t>(new_ax));
      CHECK(st[i] == (which == 0 ? x : y)[broadcast_at(idx, sx)]);
    }
  }
}

TEST_CASE_TEMPLATE("kernels: gather, scatter_add, index_select and index_add match index-by-index references", T, float,
                   double) {
  for (int trial = 0; trial < 200; ++trial) {
    Shape sx = random_shape();
    if (sx.ndim() == 0) sx.push_back(1);
    const std::size_t ax = pick(0, sx.ndim() - 1);
    if (sx[ax] == 0) sx[ax] = 2;  // something to pick from
    const auto x = values<T>(sx.numel());
    INFO(sx.str() << " along " << ax);
    // gather / scatter_add with an index of a random size along ax
    Shape si = sx;
    si[ax] = pick(0, 4);
    std::vector<std::int64_t> index(si.numel());
    for (auto& i : index) i = static_cast<std::int64_t>(pick(0, sx[ax] - 1));
    const auto g = values_of<T>(kernels::gather("gather", tensor_of(x, sx), ax, index.data(), si));
    const auto src = values<T>(si.numel());
    const auto sc = values_of<T>(kernels::scatter_add("scatter_add", tensor_of(src, si), sx, ax, index.data()));
    std::vector<T> sref(sx.numel(), T(0));
    REQUIRE(g.size() == si.numel());
    for (std::size_t j = 0; j < g.size(); ++j) {
      auto idx = unravel(j, si);
      idx[ax] = static_cast<std::size_t>(index[j]);
      CHECK(g[j] == x[broadcast_at(idx, sx)]);
      sref[broadcast_at(idx, sx)] += src[j];
    }
    CHECK(sc == sref);
    // index_select / index_add with repeated indices
    const std::size_t k = pick(0, 5);
    std::vector<std::int64_t> ids(k);
    for (auto& i : ids) i = static_cast<std::int64_t>(pick(0, sx[ax] - 1));
    Shape sk = sx;
    sk[ax] = k;
    const auto sel = values_of<T>(kernels::index_select("index_select", tensor_of(x, sx), ax, ids.data(), k));
    const auto gsrc = values<T>(sk.numel());
    const auto add = values_of<T>(kernels::index_add("index_add", tensor_of(gsrc, sk), sx, ax, ids.data(), k));
    std::vector<T> aref(sx.numel(), T(0));
    REQUIRE(sel.size() == sk.numel());
    for (std::size_t j = 0; j < sel.size(); ++j) {
      auto idx = unravel(j, sk);
      idx[ax] = static_cast<std::size_t>(ids[idx[ax]]);
      CHECK(sel[j] == x[broadcast_at(idx, sx)]);
      aref[broadcast_at(idx, sx)] += gsrc[j];
    }
    CHECK(add == aref);
  }
  // Along the last axis, long enough to split across two threads at chunk ends inside rows.
  set_num_threads(2);
  const Shape sx{3001, 7};
  const auto x = values<T>(sx.numel());
  const std::vector<std::int64_t> ids{6, 0, 3, 3, 1, 5, 2, 4, 0, 6, 2};
  const std::size_t k = ids.size();
  const auto sel = values_of<T>(kernels::index_select("index_select", tensor_of(x, sx), 1, ids.data(), k));
  REQUIRE(sel.size() == sx[0] * k);
  std::size_t wrong = 0;
  for (std::size_t o = 0; o < sx[0]; ++o)
    for (std::size_t j = 0; j < k; ++j) wrong += sel[o * k + j] != x[o * sx[1] + static_cast<std::size_t>(ids[j])];
  CHECK(wrong == 0);
  set_num_threads(1);
}

TEST_CASE_TEMPLATE("kernels: the AVX-512 tanh, sigmoid and exp agree with the AVX2 versions", T, float, double) {
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    CHECK(kernels::simd::level() < 2);  // never chosen where the CPU lacks it
    return;
  }
  // Magnitudes from 1e-3 to 1e3 of both signs, the values where the formulas switch branches, the
  // specials, and every length's tail (the last n mod 16 elements run one padded batch). The formulas
  // are the same; where the compiler fuses a multiply and an add differently in the two files (the
  // -O1 sanitizer build: 0.3% of elements) the last bit may differ, as between baseline and AVX2. The
  // optimized build gives the AVX2 bits exactly (4M values checked, bench/PROFILE.md).
  const T tol = std::numeric_limits<T>::epsilon() * 4;
  std::uniform_real_distribution<double> u(-1, 1);
  std::vector<T> x(100003);
  for (auto& v : x) v = T(u(rng) * std::pow(10.0, 3 * u(rng)));
  const T special[] = {T(0), -T(0), T(0.625), T(-0.625), T(9), T(-9), T(20), T(-20), T(88.7), T(-88.7), T(1e-30),
                       std::numeric_limits<T>::infinity(), -std::numeric_limits<T>::infinity(),
                       std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::denorm_min()};
  std::copy(std::begin(special), std::end(special), x.begin());
  for (kernels::Unary op : {kernels::Unary::tanh, kernels::Unary::sigmoid, kernels::Unary::exp})
    for (std::size_t n : {std::size_t{1}, std::size_t{15}, std::size_t{17}, x.size()}) {
      std::vector<T> narrow(n), wide(n);
      kernels::simd::avx2::unary_t<T>(op, x.data(), narrow.data(), n);
      kernels::simd::avx512::unary_t<T>(op, x.data(), wide.data(), n);
      std::size_t apart = 0;
      for (std::size_t i = 0; i < n; ++i) {
        const T a = narrow[i], b = wide[i];
        const bool same = a == b || (std::isnan(a) && std::isnan(b));
        apart += !same && !(std::abs(a - b) <= tol * std::abs(a));  // infinities and NaNs must match exactly
      }
      CHECK_MESSAGE(apart == 0, "op " << static_cast<int>(op) << ", n = " << n << ": " << apart
                                      << " elements more than 4 ulp from the AVX2 version's");
    }
  // The dispatcher takes it unless told not to (the baseline_kernels and avx2_kernels CTest entries).
  CHECK(kernels::simd::level() == (std::getenv("REWIND_NO_AVX2") ? 0 : std::getenv("REWIND_NO_AVX512") ? 1 : 2));
}

TEST_CASE_TEMPLATE("kernels: simd loops equal their scalar formulas at every length", T, float, double) {
  const T tol = std::is_same_v<T, float> ? T(1e-6) : T(1e-14);
  for (std::size_t n : {0, 1, 3, 4, 7, 8, 9, 16, 17, 33}) {
    std::vector<T> a(n), b(n), p(n), out(n);
    std::uniform_real_distribution<double> u(-3, 3), pos(0.05, 4);
    for (std::size_t i = 0; i < n; ++i) a[i] = T(u(rng)), b[i] = T(pos(rng)), p[i] = T(u(rng));
    INFO("n = " << n);
    // + − ⊙ ÷ are single IEEE operations: exact
    for (auto [op, f] : {std::pair{kernels::Binary::add, +[](T x, T y) { return x + y; }},
                         std::pair{kernels::Binary::sub, +[](T x, T y) { return x - y; }},
                         std::pair{kernels::Binary::mul, +[](T x, T y) { return x * y; }},
                         std::pair{kernels::Binary::div, +[](T x, T y) { return x / y; }}}) {
      kernels::simd::binary(op, a.data(), b.data(), out.data(), n);
      for (std::size_t i = 0; i < n; ++i) CHECK(out[i] == f(a[i], b[i]));
    }
    auto close = [&](const std::vector<T>& got, auto ref) {
      for (std::size_t i = 0; i < n; ++i) {
        const T r = ref(i);
        CHECK(std::abs(got[i] - r) <= tol * std::max(T(1), std::abs(r)));
      }
    };
    kernels::simd::unary(kernels::Unary::tanh, a.data(), out.data(), n);
    close(out, [&](std::size_t i) { return std::tanh(a[i]); });
    kernels::simd::unary(kernels::Unary::sigmoid, a.data(), out.data(), n);
    close(out, [&](std::size_t i) { return T(1) / (T(1) + std::exp(-a[i])); });
    kernels::simd::unary(kernels::Unary::exp, a.data(), out.data(), n);
    close(out, [&](std::size_t i) { return std::exp(a[i]); });
    kernels::simd::backward(kernels::Backward::tanh, b.data(), a.data(), out.data(), n);
    close(out, [&](std::size_t i) { return b[i] * (T(1) - a[i] * a[i]); });
    kernels::simd::backward(kernels::Backward::sigmoid, b.data(), a.data(), out.data(), n);
    close(out, [&](std::size_t i) { return b[i] * a[i] * (T(1) - a[i]); });
    // log and pow: within an ulp or so of std::, and exactly std:: past the last whole batch
    const std::size_t tail = n - n % kernels::simd::width<T>();
    kernels::simd::log(b.data(), out.data(), n);
    close(out, [&](std::size_t i) { return std::log(b[i]); });
    for (std::size_t i = tail; i < n; ++i) CHECK(out[i] == std::log(b[i]));
    kernels::simd::pow(b.data(), T(1.5), out.data(), n);
    close(out, [&](std::size_t i) { return std::pow(b[i], T(1.5)); });
    for (std::size_t i = tail; i < n; ++i) CHECK(out[i] == std::pow(b[i], T(1.5)));
    kernels::simd::pow(b.data(), p.data(), out.data(), n);
    close(out, [&](std::size_t i) { return std::pow(b[i], p[i]); });
    for (std::size_t i = tail; i < n; ++i) CHECK(out[i] == std::pow(b[i], p[i]));
  }
}

TEST_CASE_TEMPLATE("kernels: gemm matches a triple loop for every transpose, size and beta", T, float, double) {
  for (int trial = 0; trial < 60; ++trial) {
    // Tiny products take the plain loop, larger ones BLAS (m·n·k > 512); every sixth an outer product
    // (k = 1) and two in six a matrix times a column (n = 1), the plain loop's own cases.
    const bool big = trial % 2;
    const std::size_t m = pick(1, big ? 20 : 5), n = trial % 6 == 2 || trial % 6 == 4 ? 1 : pick(1, big ? 20 : 5);
    const std::size_t k = trial % 6 == 0 ? 1 : pick(big ? 8 : 1, big ? 20 : 5);
    const bool ta = pick(0, 1), tb = pick(0, 1);
    const T beta = T(pick(0, 1));
    const auto a = values<T>(m * k), b = values<T>(k * n);
    auto c = values<T>(m * n);
    std::vector<T> ref(m * n);
    for (std::size_t i = 0; i < m; ++i)
      for (std::size_t j = 0; j < n; ++j) {
        T acc = 0;
        for (std::size_t p = 0; p < k; ++p) acc += (ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]);
        ref[i * n + j] = acc + beta * c[i * n + j];
      }
    kernels::gemm<T>(a.data(), b.data(), c.data(), m, n, k, ta, tb, beta);
    INFO(m << "x" << k << " · " << k << "x" << n << " ta " << ta << " tb " << tb << " beta " << beta);
    CHECK(c == ref);
  }
  // An empty inner dimension gives zeros (β = 0), or leaves c (β = 1).
  const Tensor a = Tensor::zeros({3, 0}, detail::dtype_of<T>()), b = Tensor::zeros({0, 2}, detail::dtype_of<T>());
  const Tensor c = Tensor::full({3, 2}, 5.0, detail::dtype_of<T>());
  kernels::gemm_into(a, b, false, false, c, 1.0);
  CHECK(c.to_vector() == std::vector<double>(6, 5.0));
  kernels::gemm_into(a, b, false, false, c, 0.0);
  CHECK(c.to_vector() == std::vector<double>(6, 0.0));
}
