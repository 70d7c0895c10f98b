// The thread pool inside a step (kernels/pool.hpp): every kernel kind that splits across threads gives
// the same bits at 1, 2, 3 and 4 threads on large random shapes (and did split: the pool counts its
// loops); an exception in a chunk reaches the caller; a loop started inside a chunk, or from two
// threads at once, neither deadlocks nor loses work; set_num_threads sets the pool (OpenBLAS stays on
// one thread: matrix products split on the pool too, with the same bits).
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <rewind.hpp>

#include "kernels/copy.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/gemm.hpp"
#include "kernels/pool.hpp"
#include "kernels/reduce.hpp"
#include "kernels/simd.hpp"
#include "support.hpp"

extern "C" int openblas_get_num_threads(void);

using namespace rwd;
using kernels::Backward;
using kernels::Binary;
using kernels::Unary;

namespace {

// A tensor's values as bytes: equal strings are equal bits.
std::string bits(const Tensor& t) {
  if (t.dtype() == Dtype::f32) return std::string(reinterpret_cast<const char*>(t.data<float>()), t.numel() * 4);
  return std::string(reinterpret_cast<const char*>(t.data<double>()), t.numel() * 8);
}

Tensor random(const Shape& s, Dtype dtype = Dtype::f32, double lo = -2, double hi = 2) {
  static Generator gen(20261130);
  return Tensor::uniform(s, lo, hi, gen, dtype);
}

using Outputs = std::vector<Tensor>;
using Case = std::pair<std::string, std::function<Outputs()>>;

// Runs each case at 1 thread, then at 2, 3 and 4: each time every tensor it returns must have the
// 1-thread bits, and at more than one thread it must have split at least one loop across threads.
void same_bits_at_every_count(const std::vector<Case>& cases) {
  ThreadCountGuard guard;
  for (const auto& [what, make] : cases) {
    set_num_threads(1);
    const std::size_t regions_at_one = kernels::parallel_regions();
    const Outputs one = make();
    CHECK_MESSAGE(kernels::parallel_regions() == regions_at_one, what << ": split at 1 thread");
    for (int threads : {2, 3, 4}) {
      set_num_threads(threads);
      const std::size_t regions = kernels::parallel_regions();
      const Outputs got = make();
      CHECK_MESSAGE(kernels::parallel_regions() > regions, what << ": nothing split at " << threads << " threads");
      REQUIRE(got.size() == one.size());
      for (std::size_t i = 0; i < one.size(); ++i) {
        CHECK_MESSAGE(got[i].shape() == one[i].shape(), what << " output " << i);
        CHECK_MESSAGE(bits(got[i]) == bits(one[i]), what << " output " << i << ": other bits at " << threads << " threads");
      }
    }
  }
}

std::vector<std::int64_t> random_indices(std::size_t count, std::size_t below) {
  static std::mt19937 rng(7);
  std::vector<std::int64_t> v(count);
  for (auto& i : v) i = static_cast<std::int64_t>(std::uniform_int_distribution<std::size_t>(0, below - 1)(rng));
  return v;
}

}  // namespace

TEST_CASE("pool: element-wise kernels give the same bits at 1 to 4 threads") {
  const auto plus = [](auto x, auto y) { return x + y; };
  const auto minus = [](auto x, auto y) { return x - y; };
  const auto times = [](auto x, auto y) { return x * y; };
  const auto over = [](auto x, auto y) { return x / y; };
  for (Dtype dt : {Dtype::f32, Dtype::f64}) {
    const Tensor a = random({517, 301}, dt), b = random({517, 301}, dt), pos = random({517, 301}, dt, 0.1, 3);
    const Tensor bias = random({517, 1}, dt), row = random({301}, dt), scalar = random({}, dt);
    const Tensor cond = kernels::mask("mask", b, [](auto v) { return v > 0; });
    same_bits_at_every_count({
        {"add", [&] { return Outputs{kernels::binary("add", a, b, plus, Binary::add)}; }},
        {"sub", [&] { return Outputs{kernels::binary("sub", a, b, minus, Binary::sub)}; }},
        {"mul", [&] { return Outputs{kernels::binary("mul", a, b, times, Binary::mul)}; }},
        {"div", [&] { return Outputs{kernels::binary("div", a, pos, over, Binary::div)}; }},
        {"tanh", [&] { return Outputs{kernels::unary("tanh", a, Unary::tanh)}; }},
        {"sigmoid", [&] { return Outputs{kernels::unary("sigmoid", a, Unary::sigmoid)}; }},
        {"exp", [&] { return Outputs{kernels::unary("exp", a, Unary::exp)}; }},
        {"tanh backward", [&] { return Outputs{kernels::unary_backward("tanh", a, b, Backward::tanh)}; }},
        {"sigmoid backward", [&] { return Outputs{kernels::unary_backward("sigmoid", a, b, Backward::sigmoid)}; }},
        {"log", [&] { return Outputs{kernels::log("log", pos)}; }},
        {"pow by a number", [&] { return Outputs{kernels::pow("pow", pos, 2.37)}; }},
        {"pow same shape", [&] { return Outputs{kernels::pow("pow", pos, b)}; }},
        {"pow by a row", [&] { return Outputs{kernels::pow("pow", pos, row)}; }},
        {"pow by a column", [&] { return Outputs{kernels::pow("pow", pos, bias)}; }},
        {"map", [&] { return Outputs{kernels::map("map", a, [](auto v) { return -v * v + 1; })}; }},
        {"mask", [&] { return Outputs{kernels::mask("mask", a, [](auto v) { return v > 0; })}; }},
        {"bias column add", [&] { return Outputs{kernels::binary("add", a, bias, plus, Binary::add)}; }},
        {"row add", [&] { return Outputs{kernels::binary("add", row, a, plus, Binary::add)}; }},
        {"scalar sub", [&] { return Outputs{kernels::binary("sub", a, scalar, minus, Binary::sub)}; }},
        {"zip", [&] { return Outputs{kernels::zip("max", a, bias, [](auto x, auto y) { return std::max(x, y); })}; }},
        {"where", [&] { return Outputs{kernels::where("where", cond, a, bias)}; }},
    });
  }
}

TEST_CASE("pool: matrix products split across threads: the same bits run to run, within rounding of one thread") {
  // Shapes past the split (m·n·k ≥ 2·kSplitWork), every transpose, rows not a multiple of the block
  // alignment, a C too short to split by rows (split by columns), more threads than bands of rows (bands
  // cut into columns), β = 1 onto a bias, and a batch. Across
  // thread counts a block may take another OpenBLAS kernel (kernels/gemm.hpp), so the check there is
  // float rounding: a block computed wrongly, twice or not at all would be off by O(1).
  struct Dims {
    std::size_t m, n, k;
  };
  const std::vector<Dims> dims = {{1024, 64, 256}, {256, 64, 1024}, {517, 67, 301},
                                  {40, 1000, 300}, {300, 33, 2000}, {97, 513, 60}};
  ThreadCountGuard guard;
  for (Dtype dt : {Dtype::f32, Dtype::f64}) {
    const double eps = dt == Dtype::f32 ? 1.2e-7 : 2.3e-16;
    std::vector<std::pair<std::string, std::function<Tensor()>>> cases;
    std::vector<std::size_t> inner;
    for (const Dims& d : dims) {
      REQUIRE(d.m * d.n * d.k >= 2 * kernels::kSplitWork);
      for (bool ta : {false, true})
        for (bool tb : {false, true}) {
          const Tensor a = random(ta ? Shape{d.k, d.m} : Shape{d.m, d.k}, dt);
          const Tensor b = random(tb ? Shape{d.n, d.k} : Shape{d.k, d.n}, dt);
          cases.push_back({"matmul " + std::to_string(d.m) + "x" + std::to_string(d.n) + "x" + std::to_string(d.k) +
                               (ta ? " aT" : "") + (tb ? " bT" : ""),
                           [=] { return matmul(a, b, ta, tb); }});
          inner.push_back(d.k);
        }
      const Tensor W = random({d.m, d.k}, dt), x = random({d.k, d.n}, dt), bias = random({d.m}, dt);
      cases.push_back({"affine " + std::to_string(d.m), [=] { return affine(W, x, bias); }});
      inner.push_back(d.k + 1);
    }
    const Tensor ba = random({3, 300, 200}, dt), bb = random({3, 200, 90}, dt);
    cases.push_back({"batched matmul", [=] { return matmul(ba, bb); }});
    inner.push_back(200);
    for (std::size_t c = 0; c < cases.size(); ++c) {
      const auto& [what, make] = cases[c];
      CAPTURE(what);
      set_num_threads(1);
      const std::size_t regions_at_one = kernels::parallel_regions();
      const Tensor one = make();
      CHECK_MESSAGE(kernels::parallel_regions() == regions_at_one, "split at 1 thread");
      // Rounding of a sum of k terms |aᵢbᵢ| ≤ 4, generously: a wrong block is off by ~√k.
      const double tol = 64.0 * eps * 4.0 * static_cast<double>(inner[c]);
      for (int threads : {2, 3, 4, 16}) {  // 16: bands of rows cut into columns (256 rows, 5 bands)
        CAPTURE(threads);
        set_num_threads(threads);
        const std::size_t regions = kernels::parallel_regions();
        const Tensor got = make();
        CHECK_MESSAGE(kernels::parallel_regions() > regions, "nothing split");
        CHECK(bits(make()) == bits(got));  // run to run
        REQUIRE(got.shape() == one.shape());
        const std::vector<double> g = got.to_vector(), o = one.to_vector();
        double worst = 0;
        for (std::size_t i = 0; i < g.size(); ++i) worst = std::max(worst, std::abs(g[i] - o[i]));
        CHECK(worst <= tol);
      }
    }
  }
}

TEST_CASE("pool: sums and max give the same bits at 1 to 4 threads") {
  for (Dtype dt : {Dtype::f32, Dtype::f64}) {
    const Tensor wide = random({1031, 301}, dt);  // bias gradient: Σ over the columns
    const Tensor tall = random({301, 1031}, dt);  // Σ over the rows
    const Tensor cube = random({23, 301, 47}, dt);
    auto max = [](const Tensor& x, std::size_t axis, const Shape& so) {
      Tensor hot;
      const Tensor m = kernels::max("max", x, axis, so, hot);
      return Outputs{m, hot};
    };
    same_bits_at_every_count({
        {"sum over columns", [&] { return Outputs{kernels::sum("sum", wide, {1031, 1}, {1031, 1})}; }},
        {"sum over rows", [&] { return Outputs{kernels::sum("sum", tall, {1, 1031}, {1031})}; }},
        {"sum over a middle axis", [&] { return Outputs{kernels::sum("sum", cube, {23, 1, 47}, {23, 47})}; }},
        {"sum over two leading axes", [&] { return Outputs{kernels::sum("sum", cube, {1, 1, 47}, {47})}; }},
        {"sum over two trailing axes", [&] { return Outputs{kernels::sum("sum", cube, {23, 1, 1}, {23})}; }},
        {"sum over the outer axes", [&] { return Outputs{kernels::sum("sum", cube, {1, 301, 1}, {301})}; }},
        {"max along 0", [&] { return max(cube, 0, {301, 47}); }},
        {"max along 1", [&] { return max(cube, 1, {23, 47}); }},
        {"max along the last", [&] { return max(wide, 1, {1031}); }},
    });
  }
}

TEST_CASE("pool: copies, slices, concat and gathers give the same bits at 1 to 4 threads") {
  const Tensor x = random({1031, 301}), cube = random({23, 301, 47}), col = random({1031, 1});
  const std::vector<std::int64_t> rows = random_indices(700, 1031), cols = random_indices(1031 * 300, 301);
  const Tensor gate = kernels::slice("slice", x, 0, 257, 512, 1), strided = kernels::slice("slice", cube, 1, 3, 140, 2);
  const Tensor cols_part = kernels::slice("slice", x, 1, 1, 150, 2);
  const Tensor gathered = kernels::gather("gather", x, 1, cols.data(), {1031, 300});
  const Tensor picked = kernels::index_select("index_select", x, 0, rows.data(), rows.size());
  const Tensor picked1 = kernels::index_select("index_select", x, 1, cols.data(), 200);
  same_bits_at_every_count({
      {"permute 2-D", [&] { return Outputs{kernels::permute("permute", x, {1, 0})}; }},
      {"permute 3-D", [&] { return Outputs{kernels::permute("permute", cube, {2, 0, 1})}; }},
      {"broadcast_to", [&] { return Outputs{kernels::broadcast_to("broadcast_to", col, {1031, 160})}; }},
      {"cast up", [&] { return Outputs{kernels::cast("cast", x, Dtype::f64)}; }},
      {"cast down", [&] { return Outputs{kernels::cast("cast", kernels::cast("cast", cube, Dtype::f64), Dtype::f32)}; }},
      {"slice of one block", [&] { return Outputs{kernels::slice("slice", x, 0, 257, 512, 1)}; }},
      {"strided slice", [&] { return Outputs{kernels::slice("slice", cube, 1, 3, 140, 2)}; }},
      {"slice of columns", [&] { return Outputs{kernels::slice("slice", x, 1, 1, 150, 2)}; }},
      {"unslice one block", [&] { return Outputs{kernels::unslice("slice", gate, {1031, 301}, 0, 257, 512, 1)}; }},
      {"unslice strided", [&] { return Outputs{kernels::unslice("slice", strided, {23, 301, 47}, 1, 3, 140, 2)}; }},
      {"unslice columns", [&] { return Outputs{kernels::unslice("slice", cols_part, {1031, 301}, 1, 1, 150, 2)}; }},
      {"concat along 0", [&] { return Outputs{kernels::concat("concat", {x, x, gate}, 0, {1031 * 2 + 512, 301})}; }},
      {"concat along 1", [&] { return Outputs{kernels::concat("concat", {x, col, x}, 1, {1031, 603})}; }},
      {"stack", [&] { return Outputs{kernels::stack("stack", {x, x, x}, 1, {1031, 3, 301})}; }},
      {"gather", [&] { return Outputs{kernels::gather("gather", x, 1, cols.data(), {1031, 300})}; }},
      {"scatter_add", [&] { return Outputs{kernels::scatter_add("scatter_add", gathered, {1031, 301}, 1, cols.data())}; }},
      {"index_select along 0", [&] { return Outputs{kernels::index_select("index_select", x, 0, rows.data(), rows.size())}; }},
      {"index_select along 1", [&] { return Outputs{kernels::index_select("index_select", x, 1, cols.data(), 200)}; }},
      {"index_add along 0",
       [&] { return Outputs{kernels::index_add("index_add", picked, {1031, 301}, 0, rows.data(), rows.size())}; }},
      {"index_add along 1",
       [&] { return Outputs{kernels::index_add("index_add", picked1, {1031, 301}, 1, cols.data(), 200)}; }},
  });
}

TEST_CASE("pool: optimizer updates and gradient clipping give the same bits at 1 to 4 threads") {
  for (Dtype dt : {Dtype::f32, Dtype::f64}) {
    const Tensor start = random({613, 301}, dt), grad1 = random({613, 301}, dt), grad2 = random({613, 301}, dt);
    // Two steps of an optimizer from the same start and gradients: the parameter and every slot.
    auto run = [&](auto make_optimizer) {
      Tensor p = start.clone();
      auto opt = make_optimizer(std::vector<Tensor>{p});
      for (const Tensor& g : {grad1, grad2}) {
        p.set_grad(g.clone().detach());
        opt.step();
      }
      Outputs out{p.detach()};
      for (const auto& [key, value] : opt.state_dict()) out.push_back(value);
      return out;
    };
    RMSpropOptions keras = RMSprop::keras_defaults();
    keras.momentum = 0.5;
    keras.weight_decay = 0.1;
    same_bits_at_every_count({
        {"SGD", [&] {
           return run([](std::vector<Tensor> ps) {
             return SGD(ps, {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true});
           });
         }},
        {"Adam", [&] {
           return run([](std::vector<Tensor> ps) { return Adam(ps, {.lr = 0.01, .weight_decay = 0.1, .amsgrad = true}); });
         }},
        {"AdamW", [&] { return run([](std::vector<Tensor> ps) { return AdamW(ps, {.lr = 0.01, .weight_decay = 0.1}); }); }},
        {"RMSprop", [&] {
           return run([](std::vector<Tensor> ps) {
             return RMSprop(ps, {.lr = 0.01, .weight_decay = 0.1, .momentum = 0.5, .centered = true});
           });
         }},
        {"RMSprop keras", [&] { return run([&](std::vector<Tensor> ps) { return RMSprop(ps, keras); }); }},
        {"clip_grad_norm", [&] {
           Tensor p = start.clone(), q = start.clone();
           p.set_grad(grad1.clone().detach());
           q.set_grad(grad2.clone().detach());
           const double norm2 = clip_grad_norm({p}, 1.0);
           const double norm3 = clip_grad_norm({q}, 1.0, 3.0);
           return Outputs{p.grad(), q.grad(), Tensor::scalar(norm2, Dtype::f64), Tensor::scalar(norm3, Dtype::f64)};
         }},
        {"clip_grad_value", [&] {
           Tensor q = start.clone();
           q.set_grad(grad2.clone().detach());
           clip_grad_value({q}, 0.001);
           return Outputs{q.grad()};
         }},
    });
  }
}

TEST_CASE("pool: the first non-finite gradient element is found at every thread count") {
  ThreadCountGuard guard;
  const Tensor start = random({613, 301});
  std::vector<double> values = random({613, 301}).to_vector();
  values[150000] = INFINITY;  // the first, in the second half
  values[170000] = NAN;
  const Tensor grad = Tensor::from_vector(values, {613, 301});
  for (int threads : {1, 2, 3, 4}) {
    set_num_threads(threads);
    Tensor small = random({3}), p = start.clone();
    small.set_grad(random({3}));
    p.set_grad(grad);
    const std::string where = "parameter 1 (613, 301) is inf at [498, 102] (flat index 150000)";
    CHECK(contains(message_of<NonFiniteGradError>([&] { check_finite_grads({small, p}, "here"); }), where));
    CHECK(contains(message_of<NonFiniteGradError>([&] { clip_grad_norm({small, p}, 1.0, 2.0, true); }),
                   "parameter 1 (613, 301), flat index 150000"));
  }
}

TEST_CASE("pool: parallel_for covers the range once, across threads, chunks aligned") {
  ThreadCountGuard guard;
  set_num_threads(4);
  const std::size_t n = 1'000'003;
  std::vector<std::atomic<int>> hits(n);
  std::mutex m;
  std::set<std::thread::id> ids;
  std::vector<std::pair<std::size_t, std::size_t>> ranges;
  kernels::parallel_for(
      n, 1000,
      [&](std::size_t b, std::size_t e) {
        for (std::size_t i = b; i < e; ++i) hits[i].fetch_add(1, std::memory_order_relaxed);
        std::this_thread::sleep_for(std::chrono::milliseconds(2));  // let every worker take a chunk
        std::lock_guard<std::mutex> lock(m);
        ids.insert(std::this_thread::get_id());
        ranges.emplace_back(b, e);
      },
      16);
  CHECK(std::all_of(hits.begin(), hits.end(), [](const std::atomic<int>& h) { return h.load() == 1; }));
  CHECK(ids.size() > 1);
  CHECK(ids.size() <= 4);
  CHECK(ranges.size() > 1);
  for (const auto& [b, e] : ranges) CHECK((b % 16 == 0 && (e % 16 == 0 || e == n)));

  // Small work stays on the caller, in one piece.
  const std::size_t regions = kernels::parallel_regions();
  std::vector<std::pair<std::size_t, std::size_t>> small;
  std::thread::id where;
  kernels::parallel_for(1999, 1000, [&](std::size_t b, std::size_t e) {
    small.emplace_back(b, e);
    where = std::this_thread::get_id();
  });
  CHECK(small == std::vector<std::pair<std::size_t, std::size_t>>{{0, 1999}});
  CHECK(where == std::this_thread::get_id());
  CHECK(kernels::parallel_regions() == regions);
}

TEST_CASE("pool: an exception thrown in a chunk on a worker reaches the caller, and the pool goes on") {
  ThreadCountGuard guard;
  set_num_threads(2);
  const std::thread::id caller = std::this_thread::get_id();
  std::atomic<int> on_worker{0};
  const std::string message = message_of<ValueError>([&] {
    kernels::parallel_for(64, 1, [&](std::size_t, std::size_t) {
      if (std::this_thread::get_id() == caller) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));  // leaves chunks to the worker
        return;
      }
      on_worker.fetch_add(1);
      throw ValueError("thrown in a worker's chunk");
    });
  });
  CHECK(on_worker.load() >= 1);
  CHECK(message == "thrown in a worker's chunk");
  // A throw on the caller's own chunk too.
  CHECK(message_of<ShapeError>([&] {
          kernels::parallel_for(64, 1, [&](std::size_t b, std::size_t) {
            if (b == 0) throw ShapeError("first chunk");
          });
        }) == "first chunk");
  // The pool still runs loops, split.
  const std::size_t regions = kernels::parallel_regions();
  std::atomic<std::size_t> total{0};
  kernels::parallel_for(100000, 1000, [&](std::size_t b, std::size_t e) { total.fetch_add(e - b); });
  CHECK(total.load() == 100000);
  CHECK(kernels::parallel_regions() == regions + 1);
}

TEST_CASE("pool: a parallel loop inside a chunk, or from two threads at once, does not deadlock") {
  ThreadCountGuard guard;
  set_num_threads(3);
  // Nested: every chunk of the outer loop starts an inner one (on a worker or on the caller).
  std::atomic<std::size_t> total{0};
  kernels::parallel_for(64, 1, [&](std::size_t b, std::size_t e) {
    for (std::size_t i = b; i < e; ++i)
      kernels::parallel_for(100000, 1000, [&](std::size_t ib, std::size_t ie) { total.fetch_add(ie - ib); });
  });
  CHECK(total.load() == 64 * 100000);
  // Two user threads running large kernels at once: each gets the whole right answer.
  const Tensor a = random({700, 300}), b = random({700, 300});
  const std::string expected = bits(kernels::unary("tanh", a, Unary::tanh));
  std::atomic<int> wrong{0};
  auto worker = [&] {
    for (int k = 0; k < 50; ++k)
      if (bits(kernels::unary("tanh", a, Unary::tanh)) != expected) wrong.fetch_add(1);
  };
  std::thread t1(worker), t2(worker);
  t1.join();
  t2.join();
  CHECK(wrong.load() == 0);
}

TEST_CASE("pool: set_num_threads sets the pool's thread count (OpenBLAS stays on one), and round trips") {
  ThreadCountGuard guard;
  for (int n : {3, 1, 4, 2}) {
    set_num_threads(n);
    CHECK(get_num_threads() == n);
    CHECK(openblas_get_num_threads() == 1);  // the products split on the pool (kernels/gemm.hpp)
    // The loop runs on at most n distinct threads (the caller and n − 1 workers).
    // The caller's chunks wait (up to 10 s) for a worker to join, so a worker that a loaded machine
    // wakes late still finds its chunks waiting (a late one leaves them to the caller).
    std::mutex m;
    std::set<std::thread::id> ids;
    const std::thread::id caller = std::this_thread::get_id();
    kernels::parallel_for(64, 1, [&](std::size_t, std::size_t) {
      {
        std::lock_guard<std::mutex> lock(m);
        ids.insert(std::this_thread::get_id());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(3));
      for (int waited = 0; n > 1 && std::this_thread::get_id() == caller && waited < 10000; ++waited) {
        {
          std::lock_guard<std::mutex> lock(m);
          if (ids.size() > 1) break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
    CHECK(ids.size() <= static_cast<std::size_t>(n));
    if (n == 1) CHECK(ids.size() == 1);
    else CHECK(ids.size() > 1);
  }
  CHECK(message_of<ValueError>([] { set_num_threads(-2); }) == "set_num_threads: the thread count must be at least 1, got -2");
  CHECK(get_num_threads() == 2);
}

TEST_CASE("pool: the thread profile counts products, split loops and chunks while on, and nothing while off") {
  ThreadCountGuard guard;
  struct ProfileOff {
    ~ProfileOff() {
      set_thread_profiling(false);
      reset_thread_profile();
    }
  } off;
  const Tensor w = random({512, 256}), h = random({256, 64});  // 8.4M multiply-adds: splits at 2 threads
  const Tensor a = random({300, 1000}), b = random({300, 1000});
  reset_thread_profile();
  set_num_threads(2);
  (void)matmul(w, h);
  (void)(a + b);
  ThreadProfile p = thread_profile();  // off: nothing counted
  CHECK(p.products == 0);
  CHECK(p.loops_split == 0);
  CHECK(p.products_ms == 0);
  CHECK(p.chunks_ms == 0);

  set_thread_profiling(true);
  (void)matmul(w, h);                    // a product, split
  (void)matmul(random({8, 16}), slice(h, 0, 0, 16));  // 8·16·64 = 8192 multiply-adds: a product, not split
  (void)matmul(random({4, 4}), random({4, 4}));  // tiny (a plain loop): not a product here
  (void)(a + b);                         // a split loop
  (void)(random({10, 10}) + random({10, 10}));  // too small to split: not counted
  p = thread_profile();
  CHECK(p.products == 2);
  CHECK(p.products_split == 1);
  CHECK(p.products_ms > 0);
  CHECK(p.loops_split == 1);  // the product's own split loop counts as the product's
  CHECK(p.loops_split_ms > 0);
  CHECK(p.chunks_ms > 0);
  CHECK(p.join_wait_ms >= 0);

  set_num_threads(1);
  (void)matmul(w, h);
  (void)(a + b);
  const ThreadProfile q = thread_profile();
  CHECK(q.products == 3);
  CHECK(q.products_split == 1);  // one thread: nothing splits
  CHECK(q.loops_split == 1);

  // Inside a pool task (a bidirectional layer's direction beside the other) a product is one call on
  // its thread, not blocks in turn — on whichever thread runs each task.
  set_num_threads(2);
  Tensor first, second;
  kernels::run_two([&] { first = matmul(w, h); }, [&] { second = matmul(w, h); });
  const ThreadProfile r = thread_profile();
  CHECK(r.products == 5);
  CHECK(r.products_split == 1);
  CHECK(bits(first) == bits(second));

  reset_thread_profile();
  p = thread_profile();
  CHECK(p.products == 0);
  CHECK(p.products_ms == 0);
  CHECK(p.loops_split == 0);
  CHECK(p.chunks_ms == 0);
}

TEST_CASE("pool: a participant that stalls in its first chunk has the rest of its share taken by the others") {
  // Each thread owns a run of the chunks (the caller the first); a worker held up inside its first
  // chunk must not hold up the rest of its run: the caller takes it. The held chunk is released only
  // once every other chunk is done, so without the taking this would never finish (bounded: 10 s).
  ThreadCountGuard guard;
  set_num_threads(2);
  const std::thread::id caller = std::this_thread::get_id();
  for (int round = 0; round < 20; ++round) {
    const std::size_t n = 8 * 1000;  // 8 chunks of 1000: 4 owned by each thread
    std::vector<std::atomic<int>> hits(n);
    std::atomic<std::size_t> finished{0};
    std::atomic<bool> held{false}, timed_out{false};
    kernels::parallel_for(n, 1000, [&](std::size_t b, std::size_t e) {
      if (std::this_thread::get_id() != caller && !held.exchange(true)) {
        const auto start = std::chrono::steady_clock::now();
        while (finished.load() < 7) {
          if (std::chrono::steady_clock::now() - start > std::chrono::seconds(10)) {
            timed_out = true;
            break;
          }
          std::this_thread::yield();
        }
      }
      for (std::size_t i = b; i < e; ++i) hits[i].fetch_add(1);
      finished.fetch_add(1);
    });
    CHECK_FALSE(timed_out.load());
    CHECK(finished.load() == 8);
    CHECK(std::all_of(hits.begin(), hits.end(), [](const std::atomic<int>& h) { return h.load() == 1; }));
  }
}

TEST_CASE("pool: a loop of fewer chunks than threads involves only as many threads, the caller first") {
  // At 4 threads a loop of two chunks belongs to the caller and worker 1: workers 2 and 3 let it pass
  // without joining it (they would only delay its join); a loop of four or more chunks has them all.
  ThreadCountGuard guard;
  set_num_threads(4);
  auto sleepy = [](std::size_t, std::size_t) { std::this_thread::sleep_for(std::chrono::milliseconds(1)); };
  kernels::parallel_for(16, 1, sleepy);  // the workers are started and have all joined once
  const std::vector<std::uint64_t> before = kernels::worker_joins();
  REQUIRE(before.size() == 3);
  std::size_t regions = kernels::parallel_regions();
  for (int i = 0; i < 200; ++i) kernels::parallel_for(2, 1, sleepy);
  CHECK(kernels::parallel_regions() == regions + 200);  // they did split
  std::vector<std::uint64_t> after = kernels::worker_joins();
  REQUIRE(after.size() == 3);
  CHECK(after[0] > before[0]);    // worker 1 took the second chunk of some of them
  CHECK(after[1] == before[1]);   // workers 2 and 3 never joined one
  CHECK(after[2] == before[2]);
  // Three chunks: workers 1 and 2 (the caller owns the first).
  for (int i = 0; i < 50; ++i) kernels::parallel_for(3, 1, sleepy);
  const std::vector<std::uint64_t> three = kernels::worker_joins();
  CHECK(three[1] > after[1]);
  CHECK(three[2] == after[2]);
  // A task beside the caller's (run_two) is worker 1's alone.
  std::atomic<int> ran{0};
  for (int i = 0; i < 50; ++i)
    kernels::run_two([&] { std::this_thread::sleep_for(std::chrono::microseconds(200)); ++ran; }, [&] { ++ran; });
  CHECK(ran.load() == 100);
  const std::vector<std::uint64_t> tasks = kernels::worker_joins();
  CHECK(tasks[0] > three[0]);
  CHECK(tasks[1] == three[1]);
  CHECK(tasks[2] == three[2]);
}
