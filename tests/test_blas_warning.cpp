// The first matrix product warns once when OpenBLAS runs generic kernels on a CPU with AVX2/AVX-512,
// or AVX2 kernels on a CPU with AVX-512. CTest runs this case again with OPENBLAS_CORETYPE=Prescott
// (OpenBLAS's generic kernels) and REWIND_EXPECT_GENERIC=1, where the warning must appear, naming the
// fix, and with OPENBLAS_CORETYPE=Haswell and REWIND_EXPECT_NARROW=1, where it must appear on a CPU
// with AVX-512 and not on one with AVX2 only; in the ordinary run it appears exactly when blas_info()
// says generic or narrow — on stderr when this case runs the process's first product, else (a whole
// binary's run: an earlier case's product warned) as the text the first product printed.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <rewind.hpp>

#include "core/detail/blas.hpp"

using namespace rwd;

namespace {

// Runs f with stderr sent to a file, and returns what was written.
template <class F>
std::string stderr_of(F&& f) {
  char path[] = "/tmp/rwd-stderr-XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  std::fflush(stderr);
  const int saved = ::dup(2);
  ::dup2(fd, 2);
  f();
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  ::close(fd);
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  ::unlink(path);
  return text.str();
}

}  // namespace

TEST_CASE("blas: the first product warns once, with the fix, when OpenBLAS runs generic kernels") {
  const BlasInfo info = blas_info();
  Generator gen(1);
  const Tensor a = Tensor::randn({40, 30}, gen), b = Tensor::randn({30, 20}, gen);  // past the tiny-loop cut
  const bool earlier = detail::blas_warning_checked();  // a product before this case's (the whole binary)
  std::string first = stderr_of([&] { (void)matmul(a, b); });
  const std::string second = stderr_of([&] { (void)matmul(a, b); });
  CHECK(second.empty());  // once per process
  CHECK(detail::blas_warning_checked());
  if (earlier) {
    CHECK(first.empty());             // printed by that earlier product, not again
    first = detail::blas_warning();   // what it printed
  } else {
    CHECK(first == detail::blas_warning());
  }
  const char* expect = std::getenv("REWIND_EXPECT_GENERIC");
  if (expect && std::string(expect) == "1") {
    REQUIRE_MESSAGE(info.generic, "OPENBLAS_CORETYPE=Prescott should give generic kernels on this CPU: " << info.str());
    CHECK(first.find("OpenBLAS runs its generic 'Prescott' kernels") != std::string::npos);
    CHECK(first.find("OPENBLAS_CORETYPE=" + info.suggested_coretype) != std::string::npos);
    CHECK(first.find("REWIND_QUIET_BLAS=1") != std::string::npos);
  } else if (const char* narrow = std::getenv("REWIND_EXPECT_NARROW"); narrow && std::string(narrow) == "1") {
    REQUIRE(info.core == "Haswell");
    if (info.cpu == "avx512" || info.cpu == "avx512-bf16") {
      CHECK(info.narrow);
      CHECK(first.find("OpenBLAS runs its AVX2 'Haswell' kernels on this CPU, which has AVX-512") != std::string::npos);
      CHECK(first.find("OPENBLAS_CORETYPE=" + info.suggested_coretype) != std::string::npos);
      CHECK(first.find("it is set to 'Haswell' now") != std::string::npos);
    } else {  // an AVX2 CPU: Haswell's kernels are the ones that fit it
      CHECK(!info.narrow);
      CHECK(first.empty());
    }
  } else if (info.generic || info.narrow) {
    CHECK(first.find("OPENBLAS_CORETYPE=" + info.suggested_coretype) != std::string::npos);
  } else {
    CHECK(first.empty());
  }
}
