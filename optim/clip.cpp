#include "clip.hpp"

#include <algorithm>
#include <bit>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <string>
#include <type_traits>

#include "optimizer.hpp"
#include "../kernels/pool.hpp"

namespace rwd {

namespace {

// Calls f(T* data, n) on each defined gradient, as float or double.
template <class F>
void for_each_grad(const std::vector<Tensor>& params, F&& f) {
  for (std::size_t i = 0; i < params.size(); ++i) {
    Tensor g = params[i].defined() ? params[i].grad() : Tensor();
    if (!g.defined()) continue;
    if (g.dtype() == Dtype::f32)
      f(i, g.data<float>(), g.numel());
    else
      f(i, g.data<double>(), g.numel());
  }
}

// The flat index of the first NaN or ±inf in g[0, n), or n. The exponent bits are tested as integers,
// which the compiler vectorizes (a floating-point test would not be: NaN compares are not reassociable),
// block by block, so a finite gradient costs one streaming read. Large gradients are read by several
// threads (kernels/pool.hpp), each range's first hit kept, the lowest of them returned.
template <class T>
std::size_t first_nonfinite(const T* g, std::size_t n) {
  using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  constexpr U exponent = static_cast<U>(sizeof(T) == 4 ? 0x7f800000ull : 0x7ff0000000000000ull);
  constexpr std::size_t block = 1024;
  auto scan = [&](std::size_t from, std::size_t to) {
    for (std::size_t start = from; start < to; start += block) {
      const std::size_t end = std::min(to, start + block);
      bool bad = false;
      for (std::size_t j = start; j < end; ++j) bad |= (std::bit_cast<U>(g[j]) & exponent) == exponent;
      if (!bad) continue;
      for (std::size_t j = start; j < end; ++j)
        if (!std::isfinite(g[j])) return j;
    }
    return to;
  };
  std::atomic<std::size_t> first{n};
  kernels::parallel_for(
      n, kernels::grain_cheap,
      [&](std::size_t b, std::size_t e) {
        const std::size_t j = scan(b, e);
        if (j == e) return;
        std::size_t seen = first.load();
        while (j < seen && !first.compare_exchange_weak(seen, j)) {
        }
      },
      block);
  return first.load();
}

// "[1, 2]": the multi-index of flat index `flat` in `shape` ("[]" for a 0-d tensor).
std::string multi_index(const Shape& shape, std::size_t flat) {
  std::vector<std::size_t> idx(shape.ndim());
  for (std::size_t k = shape.ndim(); k-- > 0;) {
    idx[k] = flat % shape[k];
    flat /= shape[k];
  }
  std::string s = "[";
  for (std::size_t k = 0; k < idx.size(); ++k) s += (k ? ", " : "") + std::to_string(idx[k]);
  return s + "]";
}

}  // namespace

void check_finite_grads(const std::vector<Tensor>& params, const std::string& who) {
  for_each_grad(params, [&](std::size_t i, auto* g, std::size_t n) {
    const std::size_t j = first_nonfinite(g, n);
    if (j == n) return;
    const Tensor& p = params[i];
    const double v = static_cast<double>(g[j]);
    throw NonFiniteGradError(who + ": the gradient of parameter " + std::to_string(i) +
                                 (p.name().empty() ? "" : " '" + p.name() + "'") + " " + p.shape().str() + " is " +
                                 (std::isnan(v) ? std::string("nan") : format_number(v)) + " at " + multi_index(p.shape(), j) + " (flat index " +
                                 std::to_string(j) + "); no parameter was updated",
                             i, j, v);
  });
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm, double norm_type, bool error_if_nonfinite) {
  return clip_grad_norm(params, max_norm, norm_type, error_if_nonfinite, NormReduction{});
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm, double norm_type, bool error_if_nonfinite,
                      const NormReduction& reduce) {
  // An empty reduction is the one-process case (the overload above); a half-given one is a mistake.
  const bool global = static_cast<bool>(reduce.max) || static_cast<bool>(reduce.sum);
  if (global && !(reduce.max && reduce.sum))
    throw ValueError("clip_grad_norm: the NormReduction needs both max and sum (one is empty)");
  check_hyper(max_norm >= 0, "clip_grad_norm", "max_norm", max_norm, "must be >= 0");
  check_hyper(norm_type > 0, "clip_grad_norm", "norm_type", norm_type, "must be > 0, or INFINITY");
  for (std::size_t i = 0; i < params.size(); ++i)
    if (!params[i].defined()) throw ValueError("clip_grad_norm: parameter " + std::to_string(i) + " is undefined");
  // A parameter listed twice would count twice in the norm and be scaled twice (PyTorch does both):
  // refused, as the optimizers refuse it.
  refuse_repeated_params(params, "clip_grad_norm", "its gradient would count twice in the norm and be scaled twice");

  // Pass 1: the largest |g| (the ∞-norm, and the scale for pass 2), and the first NaN or ∞. Large
  // gradients are read by several threads (kernels/pool.hpp): a maximum and a first index do not
  // depend on how the range is cut.
  double largest = 0;
  bool has_nan = false, has_inf = false;
  std::size_t bad_param = 0, bad_index = 0;
  for_each_grad(params, [&](std::size_t i, auto* g, std::size_t n) {
    const bool earlier_bad = has_nan || has_inf;  // an earlier parameter had the first one
    std::mutex m;
    std::size_t first_bad = n;
    kernels::parallel_for(n, kernels::grain_cheap, [&](std::size_t b, std::size_t e) {
      double part_largest = 0;
      bool part_nan = false, part_inf = false;
      std::size_t part_first = n;
      for (std::size_t j = b; j < e; ++j) {
        const double a = std::fabs(static_cast<double>(g[j]));
        if (std::isfinite(a)) {
          part_largest = std::max(part_largest, a);
          continue;
        }
        if (part_first == n) part_first = j;
        (std::isnan(a) ? part_nan : part_inf) = true;
      }
      std::lock_guard<std::mutex> lock(m);
      largest = std::max(largest, part_largest);
      has_nan |= part_nan;
      has_inf |= part_inf;
      first_bad = std::min(first_bad, part_first);
    });
    if (!earlier_bad && first_bad < n) bad_param = i, bad_index = first_bad;
  });

  // Over processes: the largest |g| of all, and whether any holds a NaN (2) or an ∞ (1) — three
  // collectives, in the same order on every process whatever it found.
  bool local_bad = has_nan || has_inf;
  if (global) {
    largest = reduce.max(largest);
    const double flag = reduce.max(has_nan ? 2.0 : has_inf ? 1.0 : 0.0);
    has_nan = flag == 2.0;
    has_inf = flag == 1.0;
  }

  // Pass 2: total = m·(Σ (|g|/m)ᵖ)^(1/p), m = largest — the same number as (Σ |g|ᵖ)^(1/p), without
  // overflow or underflow. One thread: split, the sum's order (and so its last bits) would change.
  double total = largest;
  if (has_nan)
    total = NAN;
  else if (has_inf)
    total = INFINITY;
  // (has_nan, has_inf and largest are the same on every process here, so either all call sum() or none)
  if (!has_nan && !has_inf && !std::isinf(norm_type) && largest != 0) {
    double acc = 0;
    const bool two = norm_type == 2.0, one = norm_type == 1.0;
    for_each_grad(params, [&](std::size_t, auto* g, std::size_t n) {
      for (std::size_t j = 0; j < n; ++j) {
        const double r = std::fabs(static_cast<double>(g[j])) / largest;
        acc += two ? r * r : one ? r : std::pow(r, norm_type);
      }
    });
    if (global) acc = reduce.sum(acc);
    total = largest * (two ? std::sqrt(acc) : one ? acc : std::pow(acc, 1.0 / norm_type));
  }

  // Every element finite (on every process), the total not: the sum of |g|ᵖ overflowed (|g| near the
  // largest double, or a tiny p). No element is to blame.
  if (!std::isfinite(total) && error_if_nonfinite && !has_nan && !has_inf)
    throw NonFiniteGradError("clip_grad_norm: the total norm of order " + format_number(norm_type) +
                                 " of the gradients is " + format_number(total) +
                                 " (non-finite), so it cannot be clipped; every gradient element is finite (the "
                                 "largest |g| is " + format_number(largest) +
                                 "): the norm itself overflows a double",
                             0, 0, total);

  if (!std::isfinite(total) && error_if_nonfinite && global && !local_bad)
    throw NonFiniteGradError("clip_grad_norm: the total norm of order " + format_number(norm_type) +
                                 " of the gradients of every process is " + format_number(total) +
                                 " (non-finite), so it cannot be clipped; the non-finite element is on another "
                                 "process (this one's gradients are finite)",
                             0, 0, total);

  if (!std::isfinite(total) && error_if_nonfinite) {
    const Tensor& p = params[bad_param];
    const Tensor g = p.grad();
    const double v = g.dtype() == Dtype::f32 ? double{g.data<float>()[bad_index]} : g.data<double>()[bad_index];
    throw NonFiniteGradError("clip_grad_norm: the total norm of order " + format_number(norm_type) +
                     " of the gradients is " + format_number(total) +
                     " (non-finite), so it cannot be clipped; first non-finite element: parameter " +
                     std::to_string(bad_param) + (p.name().empty() ? "" : " '" + p.name() + "'") + " " +
                     p.shape().str() + ", flat index " + std::to_string(bad_index) +
                     ". Pass error_if_nonfinite = false to scale by it anyway",
                             bad_param, bad_index, v);
  }

  // scale = max_norm / (total + 1e-6), applied when < 1 (or NaN, as PyTorch's clamp lets it through)
  const double scale = max_norm / (total + 1e-6);
  if (!(scale >= 1.0)) {
    for_each_grad(params, [&](std::size_t, auto* g, std::size_t n) {
      using T = std::remove_pointer_t<decltype(g)>;
      const T s = static_cast<T>(scale);
      kernels::parallel_for(n, kernels::grain_cheap, [&](std::size_t b, std::size_t e) {
        for (std::size_t j = b; j < e; ++j) g[j] = g[j] * s;
      });
    });
  }
  return total;
}

void clip_grad_value(const std::vector<Tensor>& params, double clip) {
  check_hyper(clip >= 0, "clip_grad_value", "clip value", clip, "must be >= 0");
  for (std::size_t i = 0; i < params.size(); ++i)
    if (!params[i].defined()) throw ValueError("clip_grad_value: parameter " + std::to_string(i) + " is undefined");
  for_each_grad(params, [&](std::size_t, auto* g, std::size_t n) {
    using T = std::remove_pointer_t<decltype(g)>;
    const T hi = static_cast<T>(clip), lo = -hi;
    kernels::parallel_for(n, kernels::grain_cheap, [&](std::size_t b, std::size_t e) {
      for (std::size_t j = b; j < e; ++j) g[j] = g[j] < lo ? lo : hi < g[j] ? hi : g[j];  // NaN passes through
    });
  });
}

}  // namespace rwd
