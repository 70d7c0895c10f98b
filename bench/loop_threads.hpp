// bench/loop_threads.hpp — what one element-wise loop of a recurrent step costs on 1 thread and split
// on N (`rewind_bench --loop-threads --threads N`; bench/device_probe.sh runs it on the 16-core
// machine, which has no perf): the hand-off to the pool's workers and the join, against the work it
// shares out.
//
// A training step is a chain of such loops, each reading what the one before wrote (lstm_medium: about
// 1,600 split loops a step at 2 threads, bench/PROFILE.md): a chain of `calls` ops through the public
// API (allocation from the buffer cache included, as in a step), y = x + y (a load and a store:
// kernels/pool.hpp's grain_cheap) and y = tanh(y) (grain_math), at the sizes of lstm_medium's and
// lstm_large's step (64×256, 64×1024, 64×2048) and two more. One line per op and size:
//
//   loop op=<add|tanh> n=<elements> threads=N us_1=<µs a loop on 1 thread> us_N=<split on N>
//        speedup=<us_1/us_N> rounds_1=<a,b,…> rounds_N=<a,b,…>
//
// Each figure is the best round's median of `calls` loops; the thread counts alternate over the rounds
// (the pool restarts its workers at each change; a few loops before each round let them settle). The
// results are the same bits at both counts (kernels/pool.hpp); it checks it (returns 1 if not).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include <rewind.hpp>

#include "gemm_threads.hpp"  // median

namespace loop_threads {

/// Runs the measurement (threads ≥ 2, rounds and calls ≥ 1); 0, or 1 when the two counts disagree.
inline int run(int threads, int rounds, int calls) {
  const std::size_t sizes[] = {4096, 16384, 65536, 131072, 262144};
  const char* ops[] = {"add", "tanh"};
  std::printf("# loop_threads threads=%d rounds=%d calls=%d\n", threads, rounds, calls);
  int rc = 0;
  rwd::Generator gen(5);
  for (const char* op : ops)
    for (std::size_t n : sizes) {
      const rwd::Tensor x = rwd::Tensor::randn({n}, gen);
      const bool add = std::strcmp(op, "add") == 0;
      rwd::Tensor last[2];
      // A chain of `calls` loops on `t` threads; the median µs of one.
      auto time = [&](int t) {
        rwd::set_num_threads(t);
        rwd::Tensor y = x * 0.5;
        for (int i = 0; i < 20; ++i) y = add ? x + y : rwd::tanh(y);  // the workers settle
        y = x * 0.5;
        std::vector<double> us;
        us.reserve(static_cast<std::size_t>(calls));
        for (int i = 0; i < calls; ++i) {
          const auto t0 = std::chrono::steady_clock::now();
          y = add ? x + y : rwd::tanh(y);
          us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
        }
        last[t == 1 ? 0 : 1] = y;
        return gemm_threads::median(us);
      };
      std::vector<double> got[2];
      for (int r = 0; r < rounds; ++r)
        for (int w = 0; w < 2; ++w) {
          const int way = (w + r) % 2;  // the order alternates from round to round
          got[way].push_back(time(way == 0 ? 1 : threads));
        }
      const std::size_t bytes = n * sizeof(float);
      if (std::memcmp(last[0].data<float>(), last[1].data<float>(), bytes) != 0) {
        std::fprintf(stderr, "loop_threads: %s n=%zu: %d threads gave other bits than 1\n", op, n, threads);
        rc = 1;
      }
      const double one = *std::min_element(got[0].begin(), got[0].end());
      const double many = *std::min_element(got[1].begin(), got[1].end());
      std::printf("loop op=%s n=%zu threads=%d us_1=%.2f us_N=%.2f speedup=%.2f", op, n, threads, one, many, one / many);
      for (int w = 0; w < 2; ++w) {
        std::printf(" rounds_%s=", w == 0 ? "1" : "N");
        for (std::size_t r = 0; r < got[w].size(); ++r) std::printf("%s%.2f", r ? "," : "", got[w][r]);
      }
      std::printf("\n");
    }
  rwd::set_num_threads(threads);
  return rc;
}

}  // namespace loop_threads
