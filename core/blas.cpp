#include "blas.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "detail/blas.hpp"
#include "threads.hpp"

// OpenBLAS's own entry points (CMakeLists.txt requires OpenBLAS: BLA_VENDOR=OpenBLAS). Strong
// references, so a program that asks before its first product still links OpenBLAS: weak ones would
// not keep it (the linker's --as-needed drops a library no strong reference needs) and read as null.
extern "C" {
char* openblas_get_corename(void);
char* openblas_get_config(void);
}

namespace rwd {

namespace detail {

CpuVectors cpu_vectors() {
  CpuVectors v;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  v.avx2 = __builtin_cpu_supports("avx2");
  v.avx512f = __builtin_cpu_supports("avx512f");
  v.avx512bf16 = __builtin_cpu_supports("avx512bf16");
  v.amd = __builtin_cpu_is("amd");
#endif
  return v;
}

CoreFit core_fit(const std::string& core, const CpuVectors& cpu) {
  if (core.empty() || !cpu.avx2) return CoreFit::fits;
  // OpenBLAS kernel sets with AVX-512 code, and those with AVX2 code; any other on an AVX2 CPU is a
  // generic fallback.
  static const char* const avx512_cores[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
  static const char* const avx2_cores[] = {"Haswell", "Zen", "Excavator"};
  for (const char* c : avx512_cores)
    if (core == c) return CoreFit::fits;
  for (const char* c : avx2_cores)
    if (core == c) return cpu.avx512f ? CoreFit::narrow : CoreFit::fits;
  return CoreFit::generic;
}

std::string suggested_coretype(const std::string& core, const CpuVectors& cpu) {
  if (core_fit(core, cpu) == CoreFit::fits) return "";
  // The ranking measured on a Sapphire Rapids Xeon: Cooperlake > SkylakeX > Haswell (on a Zen 5 core
  // Cooperlake and SkylakeX are level, both twice Haswell's sgemm).
  if (cpu.avx512bf16) return "Cooperlake";
  if (cpu.avx512f) return "SkylakeX";
  return cpu.amd ? "Zen" : "Haswell";
}

namespace {
std::atomic<bool> g_warning_checked{false};
}  // namespace

std::string blas_warning() {
  const char* quiet = std::getenv("REWIND_QUIET_BLAS");
  if (quiet && *quiet && std::string(quiet) != "0") return "";
  const BlasInfo info = blas_info();
  if (!info.generic && !info.narrow) return "";
  const char* set = std::getenv("OPENBLAS_CORETYPE");
  const std::string why =
      info.generic ? "its generic '" + info.core + "' kernels on this CPU (" + info.cpu +
                         "), so matrix products are several times slower than they can be"
                   : "its AVX2 '" + info.core + "' kernels on this CPU, which has AVX-512 (" + info.cpu +
                         "), so matrix products can be up to 2x slower than they can be (sgemm on a Zen 5 core: "
                         "122 GFLOP/s against 232)";
  const std::string now = set ? std::string("; it is set to '") + set + "' now" +
                                    (info.generic ? ", which OpenBLAS reads as generic" : "")
                              : std::string();
  return "rewind: OpenBLAS runs " + why + ". Start the program with OPENBLAS_CORETYPE=" + info.suggested_coretype +
         " (export OPENBLAS_CORETYPE=" + info.suggested_coretype + ")" + now + ". REWIND_QUIET_BLAS=1 silences this.\n";
}

bool blas_warning_checked() { return g_warning_checked.load(std::memory_order_relaxed); }

void warn_if_generic_blas() {
  if (g_warning_checked.exchange(true)) return;
  const std::string text = blas_warning();
  if (!text.empty()) std::fputs(text.c_str(), stderr);
}

}  // namespace detail

BlasInfo blas_info() {
  BlasInfo info;
  info.library = "OpenBLAS";
  if (const char* c = openblas_get_corename()) info.core = c;
  if (const char* c = openblas_get_config()) info.config = c;
  info.threads = get_num_threads();
  const detail::CpuVectors cpu = detail::cpu_vectors();
  info.cpu = cpu.avx512bf16 ? "avx512-bf16" : cpu.avx512f ? "avx512" : cpu.avx2 ? "avx2" : "baseline";
  const detail::CoreFit fit = detail::core_fit(info.core, cpu);
  info.generic = fit == detail::CoreFit::generic;
  info.narrow = fit == detail::CoreFit::narrow;
  info.suggested_coretype = detail::suggested_coretype(info.core, cpu);
  info.packed = packed_weights() && cpu.avx512f;
  return info;
}

namespace {
// REWIND_NO_PACKED (set to anything) starts with packed weights off: for comparing the two.
std::atomic<bool> g_packed_weights{std::getenv("REWIND_NO_PACKED") == nullptr};
}  // namespace

void set_packed_weights(bool on) { g_packed_weights.store(on, std::memory_order_relaxed); }

bool packed_weights() { return g_packed_weights.load(std::memory_order_relaxed); }

std::string BlasInfo::str() const {
  std::string s = library + " core=" + (core.empty() ? "?" : core) + " threads=" + std::to_string(threads) +
                  " cpu=" + cpu;
  if (generic) s += " generic=1 fix=OPENBLAS_CORETYPE=" + suggested_coretype;
  if (narrow) s += " narrow=1 fix=OPENBLAS_CORETYPE=" + suggested_coretype;
  return s;
}

}  // namespace rwd
