// bench/gemm_threads.cpp — one matrix product of a recurrent step on N threads, three ways, in one run
// (bench/gemm_threads.hpp says which and prints what):
//
//   gemm_threads [--threads N] [--rounds R] [--calls C]      (defaults 2, 5, 400)
//
// Exit 1 when the three ways' products disagree beyond float rounding.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "gemm_threads.hpp"

int main(int argc, char** argv) {
  int threads = 2, rounds = 5, calls = 400;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--threads") threads = std::atoi(argv[i + 1]);
    else if (a == "--rounds") rounds = std::atoi(argv[i + 1]);
    else if (a == "--calls") calls = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: gemm_threads [--threads N] [--rounds R] [--calls C]\n");
      return 2;
    }
  }
  if (threads < 2 || rounds < 1 || calls < 1) {
    std::fprintf(stderr, "gemm_threads: --threads must be at least 2, --rounds and --calls at least 1\n");
    return 2;
  }
  return gemm_threads::run(threads, rounds, calls);
}
