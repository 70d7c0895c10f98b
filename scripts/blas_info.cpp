// rewind_blas_info — what rewind's matrix products run on (core/blas.hpp), for people and scripts.
//   rewind_blas_info              one line: "OpenBLAS core=Cooperlake threads=2 cpu=avx512-bf16"
//   rewind_blas_info --coretype   the OPENBLAS_CORETYPE to set when OpenBLAS runs generic kernels on
//                                 this CPU, or AVX2 ones on a CPU with AVX-512; else nothing
//                                 (scripts/deps.sh: rewind_fix_openblas_core)
#include <cstdio>
#include <cstring>

#include <rewind.hpp>

int main(int argc, char** argv) {
  const rwd::BlasInfo info = rwd::blas_info();
  if (argc > 1 && std::strcmp(argv[1], "--coretype") == 0) {
    if (info.generic || info.narrow) std::printf("%s\n", info.suggested_coretype.c_str());
    return 0;
  }
  std::printf("%s\n", info.str().c_str());
  return 0;
}
