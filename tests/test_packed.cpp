// Packed weights (kernels/packed.hpp): a leaf left operand used again inside a PackScope is packed once
// and multiplied by rewind's AVX-512 kernel. Its products against float64 references on random shapes
// (rows not a multiple of the panel, columns not of the vector, both transposes, with and without
// adding into C), the same bits at 1 to 4 threads, where it must not apply, a weight changed between
// scopes, and an LSTM's forward and backward with it on and off.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <rewind.hpp>

#include "kernels/gemm.hpp"
#include "kernels/packed.hpp"
#include "support.hpp"

using namespace rwd;

namespace {

// Whether the packed kernel runs on this CPU (AVX-512F); says so when it does not.
bool packed_kernel_here() {
  if (!kernels::packed_kernel_available()) MESSAGE("no AVX-512F: the packed kernel does not run here");
  return kernels::packed_kernel_available();
}

Tensor random(const Shape& s, Generator& gen, Dtype dtype = Dtype::f32) { return Tensor::uniform(s, -1, 1, gen, dtype); }

// op(a)·b + (accumulate ? c0 : 0) in float64, row-major (m × n).
std::vector<double> reference(const Tensor& a, bool ta, const Tensor& b, const std::vector<float>& c0, bool accumulate,
                              std::size_t m, std::size_t n, std::size_t k) {
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  std::vector<double> out(m * n);
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      double s = accumulate ? c0[i * n + j] : 0.0;
      for (std::size_t p = 0; p < k; ++p) s += double(ta ? pa[p * m + i] : pa[i * k + p]) * double(pb[p * n + j]);
      out[i * n + j] = s;
    }
  return out;
}

// Runs op(a)·b (+ c) twice in a scope (the second use packs) and returns the second result.
std::vector<float> packed_twice(const Tensor& a, bool ta, const Tensor& b, const std::vector<float>& c0, bool accumulate,
                                std::size_t m, std::size_t n, std::size_t k, bool* packed) {
  const kernels::PackScope scope;
  std::vector<float> c = c0;
  CHECK_FALSE(kernels::packed_product(a, ta, b.data<float>(), n, c.data(), n, m, n, k, accumulate));  // first use
  c = c0;
  const std::uint64_t before = kernels::packed_products();
  *packed = kernels::packed_product(a, ta, b.data<float>(), n, c.data(), n, m, n, k, accumulate);
  CHECK(kernels::packed_products() == before + (*packed ? 1 : 0));
  return c;
}

}  // namespace

TEST_CASE("packed: the kernel against float64 on random shapes, both transposes, set or added") {
  if (!kernels::packed_kernel_available()) {
    MESSAGE("this CPU has no AVX-512F: the packed kernel does not run here (products stay OpenBLAS's)");
    CHECK_FALSE(blas_info().packed);
    return;
  }
  PackedGuard guard;
  set_packed_weights(true);
  CHECK(blas_info().packed);
  Generator gen(7);
  const std::size_t ms[] = {1, 5, 6, 7, 13, 64, 100};
  const std::size_t ns[] = {16, 17, 50, 64, 65, 130};
  const std::size_t ks[] = {1, 3, 32, 257};
  int ran = 0;
  for (std::size_t m : ms)
    for (std::size_t n : ns)
      for (std::size_t k : ks)
        for (bool ta : {false, true})
          for (bool accumulate : {false, true}) {
            const Tensor a = random(ta ? Shape{k, m} : Shape{m, k}, gen);
            const Tensor b = random({k, n}, gen);
            std::vector<float> c0(m * n);
            for (float& v : c0) v = static_cast<float>(gen.uniform(-1, 1));
            // The kernel itself (packed_product leaves weights this small to OpenBLAS: kPackMinWeight).
            std::vector<float> panels((m + kernels::kPackRows - 1) / kernels::kPackRows * kernels::kPackRows * k);
            kernels::avx512::pack(a.data<float>(), ta ? m : k, ta, m, k, panels.data());
            std::vector<float> got = c0;
            kernels::avx512::run_panels(panels.data(), 0, panels.size() / (kernels::kPackRows * k), m, k,
                                        b.data<float>(), n, got.data(), n, n, accumulate);
            ++ran;
            const std::vector<double> want = reference(a, ta, b, c0, accumulate, m, n, k);
            double worst = 0;
            for (std::size_t i = 0; i < want.size(); ++i)
              worst = std::max(worst, std::abs(double(got[i]) - want[i]) / (1.0 + std::abs(want[i])));
            INFO("m=" << m << " n=" << n << " k=" << k << " ta=" << ta << " accumulate=" << accumulate);
            CHECK(worst < 1e-5 * std::sqrt(double(k)) + 1e-6);
          }
  CHECK(ran == 7 * 6 * 4 * 2 * 2);
}

TEST_CASE("packed: a split product gives the same bits at 1 to 4 threads") {
  if (!packed_kernel_here()) return;
  ThreadCountGuard threads;
  PackedGuard guard;
  set_packed_weights(true);
  Generator gen(8);
  const std::size_t m = 1024, n = 64, k = 256;  // lstm_medium's W_hh·h: 171 panels
  const Tensor a = random({m, k}, gen), b = random({k, n}, gen);
  std::vector<std::string> runs;
  for (int t = 1; t <= 4; ++t) {
    set_num_threads(t);
    std::vector<float> c(m * n, 0.0f);
    bool packed = false;
    c = packed_twice(a, false, b, c, false, m, n, k, &packed);
    REQUIRE(packed);
    runs.emplace_back(reinterpret_cast<const char*>(c.data()), c.size() * sizeof(float));
  }
  for (int t = 1; t < 4; ++t) CHECK(runs[t] == runs[0]);
}

TEST_CASE("packed: not outside a scope, not on a first use, a recorded value, a small weight, float64, a narrow or transposed right operand, or when off") {
  PackedGuard guard;
  set_packed_weights(true);
  Generator gen(9);
  const Tensor a = random({64, 64}, gen), b = random({64, 64}, gen);  // 4,096 elements: kPackMinWeight
  std::vector<float> c(64 * 64);
  auto packed = [&](const Tensor& x, std::size_t n) {
    return kernels::packed_product(x, false, b.data<float>(), n, c.data(), n, 64, n, x.dim(1), false);
  };
  CHECK_FALSE(packed(a, 64));  // no scope
  {
    const kernels::PackScope scope;
    CHECK_FALSE(packed(a, 64));                                   // the first use
    CHECK(packed(a, 64) == kernels::packed_kernel_available());   // the second
    CHECK(kernels::packed_copies() == (kernels::packed_kernel_available() ? 1u : 0u));
    CHECK_FALSE(packed(a, 15));  // narrower than one vector
    CHECK_FALSE(packed(a, 15));
    {
      const kernels::PackScope inner;  // nested: the outer scope's copy serves
      CHECK(packed(a, 64) == kernels::packed_kernel_available());
    }
    CHECK(kernels::packed_copies() == (kernels::packed_kernel_available() ? 1u : 0u));
    const Tensor small = random({64, 32}, gen);  // 2,048 elements: OpenBLAS's
    CHECK_FALSE(packed(small, 64));
    CHECK_FALSE(packed(small, 64));
    Tape tape;
    Tensor w = random({64, 64}, gen);
    w.set_requires_grad();
    const Tensor recorded = w * 2.0;  // on a tape: not a leaf
    CHECK_FALSE(packed(recorded, 64));
    CHECK_FALSE(packed(recorded, 64));
    set_packed_weights(false);
    const Tensor a2 = random({64, 64}, gen);
    CHECK_FALSE(packed(a2, 64));
    CHECK_FALSE(packed(a2, 64));
    set_packed_weights(true);
  }
  CHECK(kernels::packed_copies() == 0);  // the copies go with the scope
  // float64 and a transposed right operand: gemm_into leaves them to OpenBLAS.
  const std::uint64_t before = kernels::packed_products();
  {
    const kernels::PackScope scope;
    const Tensor a64 = random({64, 64}, gen, Dtype::f64), b64 = random({64, 64}, gen, Dtype::f64);
    for (int i = 0; i < 3; ++i) (void)matmul(a64, b64);
    for (int i = 0; i < 3; ++i) (void)matmul(a, b, false, true);
    const Tensor small = random({64, 32}, gen), bs = random({32, 64}, gen);
    for (int i = 0; i < 3; ++i) (void)matmul(small, bs);  // nor a weight under kPackMinWeight
    const Tensor fresh = random({64, 64}, gen);
    for (int i = 0; i < 3; ++i) (void)matmul(fresh, b);  // the plain one does, from its second use
  }
  CHECK(kernels::packed_products() - before == (kernels::packed_kernel_available() ? 2u : 0u));
}

TEST_CASE("packed: a weight changed between two scopes is packed again") {
  if (!packed_kernel_here()) return;
  PackedGuard guard;
  set_packed_weights(true);
  Generator gen(11);
  Tensor w = random({40, 24}, gen);
  const Tensor x = random({24, 32}, gen);
  auto twice = [&] {
    const kernels::PackScope scope;
    (void)matmul(w, x);
    return matmul(w, x).to_vector();
  };
  const std::vector<double> first = twice();
  w.fill(0.5);  // in place, between the scopes (an optimizer step)
  const std::vector<double> second = twice();
  const std::vector<double> want = matmul(w, x).to_vector();  // OpenBLAS (no scope)
  REQUIRE(second.size() == want.size());
  for (std::size_t i = 0; i < want.size(); ++i) CHECK(second[i] == doctest::Approx(want[i]).epsilon(1e-5));
  CHECK(first != second);
}

TEST_CASE("packed: a weight written in place inside a scope is packed again (data(), fill, assign, a cell scaling its matrix)") {
  if (!packed_kernel_here()) return;
  PackedGuard guard;
  set_packed_weights(true);
  Generator gen(12);
  Tensor w = random({96, 64}, gen);
  const Tensor x = random({64, 32}, gen);
  const std::vector<double> before = matmul(w, x).to_vector();
  const Tensor w2 = random({96, 64}, gen);
  std::vector<std::vector<double>> got;
  {
    const kernels::PackScope scope;
    (void)matmul(w, x);
    const std::uint64_t packed0 = kernels::packed_products();
    got.push_back(matmul(w, x).to_vector());  // packed: w's values as they are
    CHECK(kernels::packed_products() == packed0 + 1);
    w.data<float>()[5] = 3.0f;  // written through data()
    got.push_back(matmul(w, x).to_vector());
    w.fill(0.25);
    got.push_back(matmul(w, x).to_vector());
    w.assign(w2);
    got.push_back(matmul(w, x).to_vector());
    CHECK(kernels::packed_products() == packed0 + 4);
  }
  // The same writes replayed outside a scope (OpenBLAS, never packed), on a copy of w's start.
  std::vector<std::vector<double>> want;
  {
    Generator g2(12);
    Tensor u = random({96, 64}, g2);
    want.push_back(matmul(u, x).to_vector());
    u.data<float>()[5] = 3.0f;
    want.push_back(matmul(u, x).to_vector());
    u.fill(0.25);
    want.push_back(matmul(u, x).to_vector());
    u.assign(w2);
    want.push_back(matmul(u, x).to_vector());
  }
  CHECK(want[0] == before);
  for (std::size_t i = 0; i < want.size(); ++i) {
    CAPTURE(i);
    REQUIRE(got[i].size() == want[i].size());
    for (std::size_t j = 0; j < want[i].size(); ++j) CHECK(got[i][j] == doctest::Approx(want[i][j]).epsilon(1e-5));
  }

  // A custom cell whose constant matrix (not a parameter) is scaled in place after every step, inside
  // run_sequence's scope: the packed run must see each step's values, as the unpacked one does.
  struct Scaling : Cell {
    Tensor A;
    explicit Scaling(Generator& g) : A(Tensor::uniform({64, 64}, -0.2, 0.2, g)) {}
    std::pair<Tensor, State> step(const Tensor& x, const State& s) override {
      Tensor h = tanh(matmul(A, s[0]) + x);
      float* a = A.data<float>();
      for (std::size_t i = 0; i < A.numel(); ++i) a[i] *= 1.5f;
      return {h, {h}};
    }
    State initial_state(std::size_t batch) const override { return {Tensor::ones({64, batch})}; }
    std::size_t input_size() const override { return 64; }
    std::size_t output_size() const override { return 64; }
    std::string repr() const override { return "Scaling"; }
  };
  std::vector<std::vector<double>> last;
  for (bool on : {true, false}) {
    set_packed_weights(on);
    Generator g3(13);
    Scaling cell(g3);
    const Tensor seq = Tensor::uniform({6, 64, 32}, -1, 1, g3);
    const std::uint64_t packed0 = kernels::packed_products();
    last.push_back(run_sequence(cell, seq).last.to_vector());
    CHECK((kernels::packed_products() > packed0) == on);
  }
  REQUIRE(last[0].size() == last[1].size());
  for (std::size_t j = 0; j < last[0].size(); ++j) CHECK(last[0][j] == doctest::Approx(last[1][j]).epsilon(1e-5));
}

TEST_CASE("packed: an LSTM's outputs and gradients with packed weights match OpenBLAS's, forward and backward") {
  PackedGuard guard;
  Generator gen(12);
  Recurrent lstm = LSTM(16, 40, {}, gen);
  const Tensor x = random({9, 16, 24}, gen);  // (time, features, batch)
  auto run = [&](bool on, std::uint64_t* forward, std::uint64_t* backward) {
    set_packed_weights(on);
    for (Tensor p : lstm.parameters()) p.zero_grad();
    const std::uint64_t t0 = kernels::packed_products();
    Tensor y = lstm(x);
    const std::uint64_t t1 = kernels::packed_products();
    const std::vector<double> ys = y.to_vector();
    Tensor loss = sum(y * y);
    loss.backward();
    *forward = t1 - t0;
    *backward = kernels::packed_products() - t1;
    std::vector<std::vector<double>> out{ys};
    for (const Tensor& p : lstm.parameters()) out.push_back(p.grad().to_vector());
    return out;
  };
  std::uint64_t f_on = 0, b_on = 0, f_off = 0, b_off = 0;
  const auto on = run(true, &f_on, &b_on);
  const auto off = run(false, &f_off, &b_off);
  CHECK(f_off == 0);
  CHECK(b_off == 0);
  if (kernels::packed_kernel_available()) {
    // W_hh·hₜ (160×40) at steps 2…9, step 1's a first use; not W_ih·xₜ (160×16: under kPackMinWeight).
    CHECK(f_on == 8);
    // W_hhᵀ·dGₜ for steps 9…2 (step 1's h is the initial zeros, which take no gradient; nor does x:
    // no W_ihᵀ·dGₜ), the first of them a first use.
    CHECK(b_on == 7);
  }
  REQUIRE(on.size() == off.size());
  for (std::size_t i = 0; i < on.size(); ++i)
    for (std::size_t j = 0; j < on[i].size(); ++j) CHECK(on[i][j] == doctest::Approx(off[i][j]).epsilon(1e-4).scale(1.0));
}
