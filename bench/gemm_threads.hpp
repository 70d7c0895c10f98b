// bench/gemm_threads.hpp — the measurement of bench/gemm_threads.cpp, header-only so that rewind_bench
// runs it too (`rewind_bench --gemm-threads --threads N`: the 16-core machine's kit builds rewind_bench
// alone, bench/device_probe.sh): one matrix product of a recurrent step on N threads, three ways, in
// one run:
//
//   blas1     OpenBLAS on one thread (cblas_sgemm)
//   blasN     OpenBLAS on its own N threads (openblas_set_num_threads(N), then cblas_sgemm)
//   rewindN   rewind's matmul on N threads: OpenBLAS on one thread, the product split on rewind's pool
//             into blocks of rows (kernels/gemm.hpp)
//
// For the shapes of lstm_medium's step (4H = 1024, H = 256, batch 64) and lstm_large's (2048, 512):
// the forward W_hh·h, the backward W_hhᵀ·dG and the weight gradient dG·hᵀ. Each measurement is the
// median of `calls` back-to-back products (as a recurrence runs them), the three ways alternating
// over `rounds` rounds; one line per shape and way, with the best round's median:
//
//   gemm=<name> M= N= K= way=<blas1|blasN|rewindN> threads=N median_us=<best round> rounds_us=<a,b,…>
//
// The three ways give equal products up to float rounding; it checks it (returns 1 if not).
#pragma once

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <thread>
#include <vector>

#include <rewind.hpp>

extern "C" void openblas_set_num_threads(int);
extern "C" int openblas_get_num_threads(void);

namespace gemm_threads {

struct Shape3 {
  const char* name;
  int m, n, k;
  bool ta, tb;
};

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

/// Runs the measurement (threads ≥ 2, rounds and calls ≥ 1); 0, or 1 when a product disagrees.
inline int run(int threads, int rounds, int calls) {
  const Shape3 shapes[] = {
      {"lstm_medium_fwd_Whh_h", 1024, 64, 256, false, false},
      {"lstm_medium_bwd_WhhT_dG", 256, 64, 1024, true, false},
      {"lstm_medium_bwd_dG_hT", 1024, 256, 64, false, true},
      {"lstm_large_fwd_Whh_h", 2048, 64, 512, false, false},
      {"lstm_large_bwd_WhhT_dG", 512, 64, 2048, true, false},
  };
  std::printf("# gemm_threads threads=%d rounds=%d calls=%d %s\n", threads, rounds, calls, rwd::blas_info().str().c_str());
  int rc = 0;
  rwd::Generator gen(3);
  for (const Shape3& s : shapes) {
    const rwd::Tensor a = rwd::Tensor::randn(s.ta ? rwd::Shape{std::size_t(s.k), std::size_t(s.m)} : rwd::Shape{std::size_t(s.m), std::size_t(s.k)}, gen);
    const rwd::Tensor b = rwd::Tensor::randn(s.tb ? rwd::Shape{std::size_t(s.n), std::size_t(s.k)} : rwd::Shape{std::size_t(s.k), std::size_t(s.n)}, gen);
    std::vector<float> c(static_cast<std::size_t>(s.m) * s.n);
    auto blas = [&] {
      cblas_sgemm(CblasRowMajor, s.ta ? CblasTrans : CblasNoTrans, s.tb ? CblasTrans : CblasNoTrans, s.m, s.n, s.k, 1.0f,
                  a.data<float>(), s.ta ? s.m : s.k, b.data<float>(), s.tb ? s.k : s.n, 0.0f, c.data(), s.n);
    };
    rwd::Tensor out;
    // Times `calls` products; returns their median in µs.
    auto time = [&](int way) {
      std::vector<double> us;
      us.reserve(calls);
      if (way == 0) openblas_set_num_threads(1);
      if (way == 1) openblas_set_num_threads(threads);
      if (way == 2) rwd::set_num_threads(threads);  // sets OpenBLAS back to one thread
      for (int i = 0; i < calls; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        if (way == 2) out = rwd::matmul(a, b, s.ta, s.tb);
        else blas();
        us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
      }
      return median(us);
    };
    std::vector<double> got[3];
    for (int r = 0; r < rounds; ++r)
      for (int w = 0; w < 3; ++w) {
        const int way = (w + r) % 3;  // the order rotates from round to round
        got[way].push_back(time(way));
        // OpenBLAS's own threads poll for work (sched_yield) for a while after their last product, on
        // the cores the next way's threads need: rewind's split measured at one thread's time (148 µs
        // for lstm_medium's W_hh·h, against 78) when it ran straight after. 300 ms lets them sleep.
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
      }
    // The three ways' products agree (rewind's last one against OpenBLAS's last one).
    double worst = 0, scale = 0;
    const float* o = out.data<float>();
    for (std::size_t i = 0; i < c.size(); ++i) {
      worst = std::max(worst, std::abs(double(o[i]) - double(c[i])));
      scale = std::max(scale, std::abs(double(c[i])));
    }
    if (worst > 1e-4 * scale) {
      std::fprintf(stderr, "gemm_threads: %s: rewind's product differs from OpenBLAS's by %g\n", s.name, worst);
      rc = 1;
    }
    const char* ways[] = {"blas1", "blasN", "rewindN"};
    for (int w = 0; w < 3; ++w) {
      std::printf("gemm=%s M=%d N=%d K=%d way=%s threads=%d median_us=%.1f rounds_us=", s.name, s.m, s.n, s.k, ways[w],
                  w == 0 ? 1 : threads, *std::min_element(got[w].begin(), got[w].end()));
      for (std::size_t r = 0; r < got[w].size(); ++r) std::printf("%s%.1f", r ? "," : "", got[w][r]);
      std::printf("\n");
    }
  }
  return rc;
}

}  // namespace gemm_threads
