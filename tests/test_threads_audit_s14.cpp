// Session 14's audit of the threading and BLAS surface (issue 12, "Many cores"): set_num_threads and
// get_num_threads under hostile values and environments, several user threads training at once, the
// pool's fall-back when another thread holds it, thread counts of 1 to 7 on odd sizes, the thread
// profile from several threads, and the rewind_blas_info helper's arguments.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <rewind.hpp>

#include "kernels/copy.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/gemm.hpp"
#include "kernels/pool.hpp"
#include "kernels/reduce.hpp"
#include "support.hpp"

using namespace rwd;

namespace {

std::string bits_of(const Tensor& t) {
  if (t.dtype() == Dtype::f32) return std::string(reinterpret_cast<const char*>(t.data<float>()), t.numel() * 4);
  return std::string(reinterpret_cast<const char*>(t.data<double>()), t.numel() * 8);
}

// Holds the pool from another thread: a split loop whose chunks wait until release(). While it is
// held, a loop started on any other thread finds the pool busy and runs on its own thread.
class PoolHolder {
 public:
  PoolHolder() {
    m_thread = std::thread([this] {
      kernels::parallel_for(2, 1, [this](std::size_t, std::size_t) {
        m_entered.store(true);
        while (!m_release.load()) std::this_thread::sleep_for(std::chrono::microseconds(50));
      });
    });
    while (!m_entered.load()) std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  ~PoolHolder() {
    m_release.store(true);
    m_thread.join();
  }

 private:
  std::atomic<bool> m_entered{false}, m_release{false};
  std::thread m_thread;
};

// A program's output and exit status, run with extra environment (`env`, NAME=VALUE each) and
// optionally under taskset.
struct Run {
  int status = -1;
  std::string out;
};
Run run_program(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::dup2(fds[1], 2);
    ::close(fds[0]);
    for (const std::string& e : env) {
      const std::size_t eq = e.find('=');
      ::setenv(e.substr(0, eq).c_str(), e.substr(eq + 1).c_str(), 1);
    }
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  Run r;
  char buf[512];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) r.out.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// build/rewind_blas_info, beside this test binary (CMake builds it with the tests).
std::string blas_info_program() {
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe");
  return (exe.parent_path() / "rewind_blas_info").string();
}

// "threads=N" from rewind_blas_info's line.
int threads_in(const std::string& line) {
  const std::size_t at = line.find("threads=");
  REQUIRE_MESSAGE(at != std::string::npos, line);
  return std::atoi(line.c_str() + at + 8);
}

}  // namespace

// ---- the pool held by another thread ----

TEST_CASE("threads audit s14: a loop that finds the pool held by another thread runs as a chunk would") {
  // A loop that cannot have the pool (another thread's loop holds it) runs on its own thread. It must
  // run as one of its chunks would — inside the pool — or a product inside it splits into blocks where
  // the same loop on a free pool runs it whole: the bits of an affine_seq, a bidirectional layer, a
  // whole training step then depend on what another thread was doing at that moment.
  ThreadCountGuard guard;
  set_num_threads(2);
  auto seen_inside = [] {
    std::atomic<int> inside{0}, outside{0};
    kernels::parallel_for(64, 1, [&](std::size_t, std::size_t) {
      (kernels::inside_pool() ? inside : outside).fetch_add(1);
    });
    return std::pair<int, int>{inside.load(), outside.load()};
  };
  CHECK(seen_inside().second == 0);  // a free pool: every chunk inside it
  {
    PoolHolder held;
    const std::size_t regions = kernels::parallel_regions();
    const auto [inside, outside] = seen_inside();
    CHECK(kernels::parallel_regions() == regions);  // it did not have the pool
    CHECK(inside >= 1);
    CHECK(outside == 0);
  }
  // And a product in such a loop: the same bits as on a free pool.
  Generator gen(14);
  // 1M multiply-adds: a product that splits at 2 threads, into two halves that OpenBLAS runs on its
  // small-matrix kernel (n = 8), which adds in another order than the whole product's.
  const std::size_t m = 256, k = 512, n = 8;
  const Tensor a = Tensor::uniform({m, k}, -1, 1, gen), b = Tensor::uniform({k, n}, -1, 1, gen);
  auto products = [&] {
    std::vector<float> c(4 * m * n);
    kernels::parallel_for(4, 1, [&](std::size_t i0, std::size_t i1) {
      for (std::size_t i = i0; i < i1; ++i)
        kernels::gemm<float>(a.data<float>(), b.data<float>(), c.data() + i * m * n, m, n, k, false, false, 0.f);
    });
    return c;
  };
  const std::vector<float> free_pool = products();
  std::vector<float> busy_pool;
  {
    PoolHolder held;
    busy_pool = products();
  }
  CHECK(busy_pool == free_pool);
}

TEST_CASE("threads audit s14: a time-distributed Dense gives the same bits whether or not another thread holds the pool") {
  // What a user sees of the case above: TimeDistributed(Dense) runs one product a step (affine_seq),
  // the steps split across the pool; here each step's product (256 × 8 × 512) is large enough to split
  // too when it does not run in a chunk. Forward and backward, with another thread's loop holding the
  // pool (another model training on another thread) and without.
  ThreadCountGuard guard;
  set_num_threads(3);
  Generator gen(77);
  TimeDistributed head(Dense(512, 256, {}, true, Dtype::f32, gen));
  Tensor x = Tensor::uniform({6, 512, 8}, -1, 1, gen).set_requires_grad();
  auto run = [&] {
    head.zero_grad();
    x.zero_grad();
    Tape tape;
    Tensor y = head(x);
    std::vector<std::string> out = {bits_of(y)};
    backward(sum(y * y));
    out.push_back(bits_of(x.grad()));
    for (const Tensor& p : head.parameters()) out.push_back(bits_of(p.grad()));
    return out;
  };
  const std::vector<std::string> free_pool = run();
  std::vector<std::string> busy_pool;
  {
    PoolHolder held;
    busy_pool = run();
  }
  REQUIRE(busy_pool.size() == free_pool.size());
  for (std::size_t i = 0; i < busy_pool.size(); ++i) {
    CAPTURE(i);
    CHECK(busy_pool[i] == free_pool[i]);
  }
}

TEST_CASE("threads audit s14: run_two that finds the pool held by another thread runs both tasks as inside it") {
  ThreadCountGuard guard;
  set_num_threads(2);
  std::atomic<int> outside{0};
  auto task = [&] {
    if (!kernels::inside_pool()) outside.fetch_add(1);
  };
  kernels::run_two(task, task);  // a free pool: the caller's task and the worker's, both inside
  CHECK(outside.load() == 0);
  {
    PoolHolder held;
    kernels::run_two(task, task);  // in turn on this thread
  }
  CHECK(outside.load() == 0);
}

// ---- several user threads training at once ----

namespace {

// A few Adam steps of a bidirectional LSTM and a time-distributed Dense head on its own data, from
// `seed`: every parameter's bits at the end, and the losses. Large enough that its products split at 2
// threads (Wᵀ·dy of a step's input gradient: 256 × 8 × 512, whose halves OpenBLAS runs on its small-matrix
// kernel, in another order) and the two directions run beside each other.
struct Trained {
  std::vector<std::string> params;
  std::vector<double> losses;
};
Trained train_bilstm(std::uint64_t seed, int steps = 3) {
  Generator gen(seed);
  const std::size_t T = 4, F = 256, H = 128, B = 8;
  Recurrent lstm = LSTM(F, H, {}, {.bidirectional = true}, gen);
  TimeDistributed head(Dense(2 * H, 3, {}, true, Dtype::f32, gen));
  std::vector<Tensor> params = lstm.parameters();
  for (const Tensor& p : head.parameters()) params.push_back(p);
  Adam opt(params, {.lr = 0.01});
  const Tensor x = Tensor::uniform({T, F, B}, -1, 1, gen), target = Tensor::uniform({T, 3, B}, -1, 1, gen);
  Trained out;
  for (int s = 0; s < steps; ++s) {
    opt.zero_grad();
    Tape tape;
    Tensor loss = mse_loss(head(lstm(x)), target);
    backward(loss);
    opt.step();
    out.losses.push_back(loss.item());
  }
  for (const Tensor& p : params) out.params.push_back(bits_of(p));
  return out;
}

}  // namespace

TEST_CASE("threads audit s14: user threads training at once get the bits of the same trainings one after the other") {
  ThreadCountGuard guard;
  for (int threads : {2, 3, 4}) {
    CAPTURE(threads);
    set_num_threads(threads);
    std::vector<Trained> alone;
    for (std::uint64_t seed : {1, 2, 3}) alone.push_back(train_bilstm(seed));
    std::vector<Trained> together(3);
    {
      std::vector<std::thread> users;
      for (std::size_t i = 0; i < 3; ++i) users.emplace_back([&, i] { together[i] = train_bilstm(i + 1); });
      for (std::thread& t : users) t.join();
    }
    for (std::size_t i = 0; i < 3; ++i) {
      CAPTURE(i);
      CHECK(together[i].losses == alone[i].losses);
      CHECK(together[i].params == alone[i].params);
    }
  }
}

TEST_CASE("threads audit s14: set_num_threads from another thread while a thread trains, and user threads that end") {
  ThreadCountGuard guard;
  set_num_threads(2);
  const Trained reference = train_bilstm(7, 4);
  std::atomic<bool> done{false};
  std::thread changer([&] {
    for (int i = 0; !done.load(); ++i) {
      set_num_threads(1 + i % 4);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  Trained moving;
  std::thread trainer([&] { moving = train_bilstm(7, 4); });
  trainer.join();
  done.store(true);
  changer.join();
  // The thread count changed under it: the products may split otherwise (float rounding), nothing else.
  REQUIRE(moving.losses.size() == reference.losses.size());
  for (std::size_t s = 0; s < moving.losses.size(); ++s) CHECK(moving.losses[s] == doctest::Approx(reference.losses[s]).epsilon(1e-4));
  // Short-lived user threads, each running split loops, while the pool lives on: no growth with their number.
  set_num_threads(3);
  const Tensor a = Tensor::uniform({701, 301}, -1, 1, *std::make_unique<Generator>(5));
  const std::string want = bits_of(kernels::unary("tanh", a, kernels::Unary::tanh));
  auto wave = [&] {
    std::atomic<int> wrong{0};
    for (int round = 0; round < 10; ++round) {
      std::vector<std::thread> ts;
      for (int t = 0; t < 4; ++t)
        ts.emplace_back([&] {
          if (bits_of(kernels::unary("tanh", a, kernels::Unary::tanh)) != want) wrong.fetch_add(1);
        });
      for (std::thread& t : ts) t.join();
    }
    return wrong.load();
  };
  CHECK(wave() == 0);
  const std::uint64_t growth = peak_growth([&] { CHECK(wave() == 0); });
  if (k_memory_measurable) CHECK(growth < (64u << 20));  // (ASan's quarantine held 83 MiB of freed buffers)
}

// ---- set_num_threads / get_num_threads ----

TEST_CASE("threads audit s14: set_num_threads refuses every count outside 1 to kMaxThreads and keeps the one before") {
  ThreadCountGuard guard;
  set_num_threads(3);
  for (int bad : {0, -1, -3, INT_MIN, INT_MAX, kMaxThreads + 1}) {
    CAPTURE(bad);
    const std::string msg = message_of<ValueError>([&] { set_num_threads(bad); });
    CHECK(contains(msg, "set_num_threads"));
    CHECK(contains(msg, "got " + std::to_string(bad)));
    CHECK(get_num_threads() == 3);
  }
  set_num_threads(kMaxThreads);  // allowed (no loop runs at it here: that would start 1023 threads)
  CHECK(get_num_threads() == kMaxThreads);
  set_num_threads(1);
  CHECK(get_num_threads() == 1);
}

TEST_CASE("threads audit s14: the default thread count under hostile OPENBLAS_NUM_THREADS and OMP_NUM_THREADS") {
  const std::string program = blas_info_program();
  REQUIRE_MESSAGE(std::filesystem::exists(program), program << " (built with the tests)");
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  auto threads_with = [&](const std::vector<std::string>& env, const std::vector<std::string>& prefix = {}) {
    std::vector<std::string> argv = prefix;
    argv.push_back(program);
    std::vector<std::string> full = {"REWIND_QUIET_BLAS=1"};
    full.insert(full.end(), env.begin(), env.end());
    const Run r = run_program(argv, full);
    CHECK_MESSAGE(r.status == 0, r.out);
    return threads_in(r.out);
  };
  for (const std::string var : {"OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"}) {
    CAPTURE(var);
    const std::string other = var == "OMP_NUM_THREADS" ? "OPENBLAS_NUM_THREADS" : "OMP_NUM_THREADS";
    for (const char* value : {"0", "-3", "abc", "4x", "", "100000"}) {
      CAPTURE(value);
      // Garbage, zero, negative or empty: ignored (one a core); past the cores: the cores (as OpenBLAS
      // reads them, NumPy's and PyTorch's BLAS too).
      const int n = threads_with({other + "=", var + "=" + value});
      CHECK(n >= 1);
      CHECK(n <= std::max(cores, 1));
    }
    CHECK(threads_with({other + "=", var + "=1"}) == 1);
  }
  // Pinned to one core with taskset: the default honours the affinity mask.
  if (cores > 1 && std::system("command -v taskset >/dev/null 2>&1") == 0)
    CHECK(threads_with({"OPENBLAS_NUM_THREADS=", "OMP_NUM_THREADS="}, {"taskset", "-c", "0"}) == 1);
}

// ---- results at 1 to 7 threads on odd sizes ----

TEST_CASE("threads audit s14: split loops give the same bits at 1, 2, 3, 4 and 7 threads on odd sizes") {
  ThreadCountGuard guard;
  Generator gen(20261201);
  const Tensor x = Tensor::uniform({1033, 307}, -2, 2, gen), y = Tensor::uniform({1033, 307}, -2, 2, gen);
  const Tensor row = Tensor::uniform({1, 307}, -2, 2, gen), cube = Tensor::uniform({29, 307, 41}, -2, 2, gen);
  std::vector<std::int64_t> idx(1033 * 13);
  for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<std::int64_t>((i * 7919) % 307);
  std::vector<std::int64_t> rows(611);
  for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<std::int64_t>((i * 389) % 1033);
  auto run = [&] {
    std::vector<std::string> out;
    out.push_back(bits_of(x + y));
    out.push_back(bits_of(x * row));  // broadcast
    out.push_back(bits_of(tanh(x)));
    out.push_back(bits_of(sum(cube, {1})));
    out.push_back(bits_of(sum(cube, {0, 2})));
    out.push_back(bits_of(max(cube, 2)));
    out.push_back(bits_of(kernels::slice("slice", cube, 1, 5, 150, 2)));
    out.push_back(bits_of(kernels::concat("concat", {x, y}, 1, {1033, 614})));
    out.push_back(bits_of(kernels::stack("stack", {x, y, x}, 0, {3, 1033, 307})));
    out.push_back(bits_of(kernels::gather("gather", x, 1, idx.data(), {1033, 13})));
    out.push_back(bits_of(kernels::index_select("index_select", x, 0, rows.data(), rows.size())));
    out.push_back(bits_of(kernels::cast("cast", x, Dtype::f64)));
    Tensor p = x.clone();
    p.set_grad(y.clone().detach());
    const double norm = clip_grad_norm({p}, 0.5);
    out.push_back(bits_of(p.grad()) + std::to_string(norm));
    Adam opt({p}, {.lr = 0.01, .weight_decay = 0.1});
    opt.step();
    out.push_back(bits_of(p));
    return out;
  };
  set_num_threads(1);
  const std::vector<std::string> one = run();
  for (int threads : {2, 3, 4, 7}) {
    CAPTURE(threads);
    set_num_threads(threads);
    const std::size_t regions = kernels::parallel_regions();
    const std::vector<std::string> got = run();
    CHECK(kernels::parallel_regions() > regions);
    REQUIRE(got.size() == one.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
      CAPTURE(i);
      CHECK(got[i] == one[i]);
    }
  }
}

// ---- the thread profile from several threads ----

TEST_CASE("threads audit s14: the thread profile counts from several threads at once, and reset zeros it") {
  ThreadCountGuard guard;
  set_num_threads(2);
  Generator gen(3);
  const Tensor a = Tensor::uniform({512, 256}, -1, 1, gen), b = Tensor::uniform({256, 64}, -1, 1, gen);
  set_thread_profiling(true);
  reset_thread_profile();
  std::vector<std::thread> users;
  for (int t = 0; t < 3; ++t)
    users.emplace_back([&] {
      for (int i = 0; i < 20; ++i) (void)matmul(a, b);  // 8M multiply-adds each: past the tiny cut
    });
  for (std::thread& t : users) t.join();
  const ThreadProfile p = thread_profile();
  set_thread_profiling(false);
  CHECK(p.products == 60);  // every product counted once, whichever thread ran it
  CHECK(p.products_split <= p.products);
  CHECK(p.products_ms > 0);
  reset_thread_profile();
  const ThreadProfile zero = thread_profile();
  CHECK(zero.products == 0);
  CHECK(zero.loops_split == 0);
  CHECK(zero.products_ms == 0);
  (void)matmul(a, b);  // off: nothing counted
  CHECK(thread_profile().products == 0);
}

// ---- rewind_blas_info's arguments ----

TEST_CASE("threads audit s14: rewind_blas_info refuses an argument it does not know, with a message and exit 2") {
  const std::string program = blas_info_program();
  REQUIRE_MESSAGE(std::filesystem::exists(program), program << " (built with the tests)");
  const Run plain = run_program({program}, {"REWIND_QUIET_BLAS=1"});
  CHECK(plain.status == 0);
  CHECK(contains(plain.out, "OpenBLAS core="));
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--bogus"}, {"--coretype", "extra"}, {"coretype"}, {"-h", "x"}}) {
    std::vector<std::string> argv = {program};
    argv.insert(argv.end(), args.begin(), args.end());
    const Run r = run_program(argv, {"REWIND_QUIET_BLAS=1"});
    CAPTURE(args[0]);
    CHECK(r.status == 2);
    CHECK(contains(r.out, "usage: rewind_blas_info"));
    CHECK(!contains(r.out, "OpenBLAS core="));  // not a silent run
  }
  const Run help = run_program({program, "--help"}, {"REWIND_QUIET_BLAS=1"});
  CHECK(help.status == 0);
  CHECK(contains(help.out, "usage: rewind_blas_info"));
  const Run core = run_program({program, "--coretype"}, {"REWIND_QUIET_BLAS=1"});
  CHECK(core.status == 0);
  CHECK((core.out.empty() || core.out.back() == '\n'));
}

// ---- the scripts' arguments and the OpenBLAS core fix ----

namespace {

std::filesystem::path source_root() { return test_ref_dir().parent_path().parent_path(); }

}  // namespace

TEST_CASE("threads audit s14: bench/compare.sh refuses a bad argument by name before it measures anything") {
  const std::string script = (source_root() / "bench" / "compare.sh").string();
  REQUIRE(std::filesystem::exists(script));
  // Each refused with a message naming the option and exit 2 — before the bench is even looked for
  // (here: none at that path), so nothing runs on a typo.
  const std::vector<std::pair<std::string, std::vector<std::string>>> bad = {
      {"--rounds", {"--rounds", "0"}},       {"--rounds", {"--rounds", "abc"}},   {"--threads", {"--threads", "0"}},
      {"--threads", {"--threads", "1,x"}},   {"--threads", {"--threads", ""}},    {"--steps", {"--steps", "-5"}},
      {"--cases", {"--cases", ""}},          {"--bench", {"--bench"}},            {"--rounds", {"--rounds"}},
  };
  for (const auto& [name, args] : bad) {
    std::vector<std::string> argv = {"bash", script, "--bench", "/dev/null/rewind_bench"};
    argv.insert(argv.end(), args.begin(), args.end());
    const Run r = run_program(argv, {});
    CAPTURE(args.back());
    CHECK(r.status == 2);
    CHECK_MESSAGE(contains(r.out, name), r.out);
    CHECK(!contains(r.out, "no rewind_bench"));
  }
  const Run unknown = run_program({"bash", script, "--thread", "2"}, {});
  CHECK(unknown.status == 2);
  CHECK(contains(unknown.out, "unknown argument --thread"));
  // A table it cannot write is refused first, not after the whole run.
  const Run table = run_program({"bash", script, "--bench", "/dev/null/rewind_bench", "--markdown", "/dev/null/t.md"}, {});
  CHECK(table.status == 2);
  CHECK_MESSAGE(contains(table.out, "--markdown: cannot write /dev/null/t.md"), table.out);
}

TEST_CASE("threads audit s14: bench/device_probe.sh refuses an argument and a bad THREADS instead of running its defaults") {
  const std::string script = (source_root() / "bench" / "device_probe.sh").string();
  REQUIRE(std::filesystem::exists(script));
  const Run arg = run_program({"bash", script, "--threads", "4"}, {});
  CHECK(arg.status == 2);
  CHECK_MESSAGE(contains(arg.out, "takes no arguments"), arg.out);
  const Run bad = run_program({"bash", script}, {"THREADS=1 x"});
  CHECK(bad.status == 2);
  CHECK_MESSAGE(contains(bad.out, "THREADS takes positive counts"), bad.out);
}

TEST_CASE("threads audit s14: scripts/peers.sh names a bad argument and a bad seed, and runs nothing") {
  const std::string script = (source_root() / "scripts" / "peers.sh").string();
  REQUIRE(std::filesystem::exists(script));
  // REWIND_BUILD at a path that cannot be made: were anything built or run, it would fail otherwise.
  const std::vector<std::string> env = {"REWIND_BUILD=/dev/null/build"};
  const Run flag = run_program({"bash", script, "forecast", "--seed", "1"}, env);
  CHECK(flag.status == 2);
  CHECK_MESSAGE(contains(flag.out, "unknown argument --seed"), flag.out);
  for (const char* seeds : {"1,x", "", "1,,2", "-1"}) {
    CAPTURE(seeds);
    const Run r = run_program({"bash", script, "forecast", "--seeds", seeds}, env);
    CHECK(r.status == 2);
    CHECK_MESSAGE(contains(r.out, "--seeds"), r.out);
  }
  const Run none = run_program({"bash", script}, env);
  CHECK(none.status == 2);
  CHECK(contains(none.out, "usage: bash scripts/peers.sh"));
}

TEST_CASE("threads audit s14: rewind_fix_openblas_core exports the core that fits, and REWIND_KEEP_OPENBLAS_CORETYPE keeps yours") {
  const std::string build = std::filesystem::read_symlink("/proc/self/exe").parent_path().string();
  REQUIRE(std::filesystem::exists(build + "/rewind_blas_info"));
  const std::string deps = (source_root() / "scripts" / "deps.sh").string();
  auto core_after = [&](const std::vector<std::string>& env) {
    const Run r = run_program({"bash", "-c", "source '" + deps + "'; rewind_fix_openblas_core '" + build +
                                                 "' 2>/dev/null; echo \"core=${OPENBLAS_CORETYPE:-}\""},
                              env);
    CHECK(r.status == 0);
    const std::size_t at = r.out.rfind("core=");
    REQUIRE(at != std::string::npos);
    return r.out.substr(at + 5, r.out.find('\n', at) - at - 5);
  };
  const std::string fits = blas_info().cpu == "avx512-bf16" ? "Cooperlake"
                           : blas_info().cpu == "avx512"    ? "SkylakeX"
                                                            : "";
  if (fits.empty()) return;  // an AVX2 CPU: Haswell fits it, nothing to fix
  CHECK(core_after({"OPENBLAS_CORETYPE=Haswell", "REWIND_KEEP_OPENBLAS_CORETYPE="}) == fits);
  CHECK(core_after({"OPENBLAS_CORETYPE=Prescott", "REWIND_KEEP_OPENBLAS_CORETYPE=0"}) == fits);
  CHECK(core_after({"OPENBLAS_CORETYPE=Haswell", "REWIND_KEEP_OPENBLAS_CORETYPE=1"}) == "Haswell");
}

TEST_CASE("threads audit s14: bench/torch_peer.py refuses a thread count under 1 and a step count under 1, by name") {
  const std::string script = (source_root() / "bench" / "torch_peer.py").string();
  REQUIRE(std::filesystem::exists(script));
  if (!std::filesystem::exists("/usr/bin/python3")) return;  // the peer's interpreter (its parser needs no torch)
  // threads 0 ran as 1 while its line said threads=0; steps -1 ended in a traceback (a median of nothing).
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--threads", "0"}, {"--threads", "-2"}, {"--steps", "-1"}, {"--steps", "0"}, {"--warmup", "x"}}) {
    CAPTURE(args[0] + " " + args[1]);
    const Run r = run_program({"/usr/bin/python3", script, "--cases", "tiny", args[0], args[1]}, {});
    CHECK(r.status == 2);
    CHECK_MESSAGE(contains(r.out, "argument " + args[0]), r.out);
    CHECK(!contains(r.out, "Traceback"));
  }
}

// ---- fork() after the pool started ----

TEST_CASE("threads audit s14: a child of fork() runs split loops and changes the thread count without the parent's workers") {
  // The child has only the thread that forked: the parent's pool workers are not there to wake, or to
  // join when the count changes (that join waited forever). A worker process (data loading, a
  // multiprocessing-style server) forked from a program that already trained must go on working.
  ThreadCountGuard guard;
  set_num_threads(3);
  Generator gen(9);
  const Tensor a = Tensor::uniform({701, 301}, -1, 1, gen);
  const std::string want = bits_of(kernels::unary("tanh", a, kernels::Unary::tanh));  // the pool started
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int code = 0;
    for (int threads : {3, 2, 4, 1, 2}) {  // the same count first, then others (each a resize)
      set_num_threads(threads);
      const std::size_t regions = kernels::parallel_regions();
      if (bits_of(kernels::unary("tanh", a, kernels::Unary::tanh)) != want) code = 1;
      if (threads > 1 && kernels::parallel_regions() == regions) code = 2;  // it used the pool
    }
    ::_exit(code);
  }
  // Wait up to 60 s: a child stuck joining workers that do not exist is killed and fails the case.
  int status = 0;
  bool ended = false;
  for (int i = 0; i < 600 && !ended; ++i) {
    ended = ::waitpid(pid, &status, WNOHANG) == pid;
    if (!ended) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!ended) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  CHECK_MESSAGE(ended, "the child hung");
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

#ifdef REWIND_TEST_HAVE_BENCH
TEST_CASE("threads audit s14: rewind_bench refuses a thread list, a bad count or one past kMaxThreads, by name") {
  const std::string bench = (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "rewind_bench").string();
  REQUIRE(std::filesystem::exists(bench));
  // "--threads 1,2" ran at 1 thread (atoi), "--threads x" too; 5000 ended in an uncaught ValueError.
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--threads", "1,2"}, {"--threads", "x"}, {"--threads", "0"}, {"--threads", "5000"}, {"--threads", ""},
           {"--steps", "0"}, {"--steps", "3x"}, {"--warmup", "-1"}}) {
    CAPTURE(args[0] + " " + args[1]);
    const Run r = run_program({bench, "--cases", "tiny", args[0], args[1]}, {"REWIND_QUIET_BLAS=1"});
    CHECK(r.status == 2);
    CHECK_MESSAGE(contains(r.out, "rewind_bench: " + args[0] + " takes one integer"), r.out);
    CHECK(!contains(r.out, "median_ms"));  // nothing measured
  }
}
#endif

// ---- the count changed between forward and backward, and inside a gradient-ready hook ----

TEST_CASE("threads audit s14: the thread count changed between forward and backward, or in a gradient-ready hook") {
  ThreadCountGuard guard;
  Generator gen(41);
  Recurrent lstm = LSTM(96, 64, {}, {.bidirectional = true}, gen);
  const Tensor x = Tensor::uniform({5, 96, 32}, -1, 1, gen);
  const std::vector<Tensor> params = lstm.parameters();
  auto grads = [&](int forward_threads, int backward_threads, bool hook_changes) {
    for (Tensor p : params) p.zero_grad();
    set_num_threads(forward_threads);
    Tape tape;
    Tensor loss = sum(tanh(lstm(x)));
    set_num_threads(backward_threads);
    int fired = 0;
    {
      auto hook = on_grad_ready([&](const Tensor&) {
        if (!hook_changes) return;
        set_num_threads(1 + (fired++ % 4));  // 1, 2, 3, 4, 1, …: resizes the pool mid-sweep
      });
      backward(loss);
    }
    if (hook_changes) CHECK(fired == static_cast<int>(params.size()));
    std::vector<std::vector<double>> out;
    for (const Tensor& p : params) out.push_back(p.grad().to_vector());
    return out;
  };
  const auto reference = grads(1, 1, false);
  for (auto [f, b, hook] : std::vector<std::tuple<int, int, bool>>{{2, 2, false}, {2, 3, false}, {2, 1, false}, {3, 2, false},
                                                                   {2, 2, true}, {4, 2, true}}) {
    CAPTURE(f);
    CAPTURE(b);
    CAPTURE(hook);
    const auto got = grads(f, b, hook);
    REQUIRE(got.size() == reference.size());
    double worst = 0;  // products split otherwise at other counts: float32 rounding, no more
    for (std::size_t k = 0; k < got.size(); ++k)
      for (std::size_t i = 0; i < got[k].size(); ++i)
        worst = std::max(worst, std::abs(got[k][i] - reference[k][i]) / std::max(1.0, std::abs(reference[k][i])));
    CHECK(worst < 1e-4);
  }
}
