// The BLAS check (core/blas.hpp): which kernels OpenBLAS runs, and the advice when they are generic or
// narrower than the CPU.
#include <doctest/doctest.h>

#include "core/blas.hpp"
#include "core/detail/blas.hpp"

using namespace rwd;
using detail::CpuVectors;
using detail::suggested_coretype;

TEST_CASE("blas: a generic OpenBLAS core on an AVX2 or AVX-512 CPU gets the CORETYPE that fits it") {
  const CpuVectors spr{.avx2 = true, .avx512f = true, .avx512bf16 = true, .amd = false};
  const CpuVectors skx{.avx2 = true, .avx512f = true, .avx512bf16 = false, .amd = false};
  const CpuVectors hsw{.avx2 = true, .avx512f = false, .avx512bf16 = false, .amd = false};
  const CpuVectors zen{.avx2 = true, .avx512f = false, .avx512bf16 = false, .amd = true};
  const CpuVectors old{};
  // Sapphire Rapids read as Prescott by OpenBLAS 0.3.21: the measured best is Cooperlake.
  CHECK(suggested_coretype("Prescott", spr) == "Cooperlake");
  CHECK(suggested_coretype("Nehalem", skx) == "SkylakeX");
  CHECK(suggested_coretype("Core2", hsw) == "Haswell");
  CHECK(suggested_coretype("Barcelona", zen) == "Zen");
  CHECK(suggested_coretype("Sandybridge", hsw) == "Haswell");  // AVX only: still no AVX2 kernels
  // AVX-512 kernels fit every CPU that runs them; AVX2 ones fit an AVX2 CPU.
  for (const char* core : {"SkylakeX", "Cooperlake"}) {
    CAPTURE(core);
    CHECK(suggested_coretype(core, spr).empty());
    CHECK(suggested_coretype(core, skx).empty());
    CHECK(detail::core_fit(core, spr) == detail::CoreFit::fits);
  }
  for (const char* core : {"Haswell", "Zen", "Excavator"}) {
    CAPTURE(core);
    CHECK(suggested_coretype(core, hsw).empty());
    CHECK(suggested_coretype(core, zen).empty());
    CHECK(detail::core_fit(core, zen) == detail::CoreFit::fits);
    // ... but AVX2 kernels on a CPU with AVX-512 are narrow: the AVX-512 set that fits it.
    CHECK(detail::core_fit(core, spr) == detail::CoreFit::narrow);
    CHECK(suggested_coretype(core, spr) == "Cooperlake");
    CHECK(suggested_coretype(core, skx) == "SkylakeX");
  }
  CHECK(detail::core_fit("Prescott", spr) == detail::CoreFit::generic);
  // A CPU without AVX2 has nothing better; an unknown core (another BLAS) is not judged.
  CHECK(suggested_coretype("Prescott", old).empty());
  CHECK(suggested_coretype("", spr).empty());
}

TEST_CASE("blas: blas_info reads the linked OpenBLAS and this CPU") {
  const BlasInfo info = blas_info();
  CHECK(info.library == "OpenBLAS");  // the build links Debian's OpenBLAS
  CHECK(!info.core.empty());
  CHECK(info.config.find("OpenBLAS") != std::string::npos);
  CHECK(info.threads >= 1);
  CHECK((info.cpu == "avx512-bf16" || info.cpu == "avx512" || info.cpu == "avx2" || info.cpu == "baseline"));
  CHECK((info.generic || info.narrow) == !info.suggested_coretype.empty());
  CHECK(!(info.generic && info.narrow));
  CHECK(info.str().find("core=" + info.core) != std::string::npos);
}
