// rewind_blas_info — what rewind's matrix products run on (core/blas.hpp), for people and scripts.
//   rewind_blas_info              one line: "OpenBLAS core=Cooperlake threads=2 cpu=avx512-bf16"
//   rewind_blas_info --coretype   the OPENBLAS_CORETYPE to set when OpenBLAS runs generic kernels on
//                                 this CPU, or AVX2 ones on a CPU with AVX-512; else nothing
//                                 (scripts/deps.sh: rewind_fix_openblas_core)
//   rewind_blas_info --help       this usage
// Anything else is refused (usage on stderr, exit 2): a mistyped --coretype printed the info line, which
// a script reading the core to set would have taken for one.
#include <cstdio>
#include <cstring>

#include <rewind.hpp>

namespace {

int usage(std::FILE* to, int code) {
  std::fputs("usage: rewind_blas_info [--coretype]\n"
             "  (no argument)  what the matrix products run on: OpenBLAS's core, threads, the CPU's vectors\n"
             "  --coretype     the OPENBLAS_CORETYPE that fits this CPU when OpenBLAS's kernels do not, else nothing\n",
             to);
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  bool coretype = false;
  if (argc > 2) {
    std::fprintf(stderr, "rewind_blas_info: one argument at most, got %d\n", argc - 1);
    return usage(stderr, 2);
  }
  if (argc == 2) {
    if (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) return usage(stdout, 0);
    if (std::strcmp(argv[1], "--coretype") != 0) {
      std::fprintf(stderr, "rewind_blas_info: unknown argument %s\n", argv[1]);
      return usage(stderr, 2);
    }
    coretype = true;
  }
  const rwd::BlasInfo info = rwd::blas_info();
  if (coretype) {
    if (info.generic || info.narrow) std::printf("%s\n", info.suggested_coretype.c_str());
    return 0;
  }
  std::printf("%s\n", info.str().c_str());
  return 0;
}
