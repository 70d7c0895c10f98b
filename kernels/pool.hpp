// rewind/kernels/pool.hpp — the threads that split one large kernel call (library-internal).
//
//   parallel_for(n, grain, body)        body(begin, end) over ranges that cover [0, n) once each
//
// Small work stays on the caller: when n < 2·grain the call is body(0, n), a compare and nothing
// more (a batch-1 step never leaves it). Larger work is cut into chunks of at least `grain` items,
// about four per thread, dealt out in order: thread p (the caller is 0) owns the p-th run of them, so
// a loop's part p lies where the previous loop's part p of that size did, in p's cache (pool.cpp).
// A loop of fewer chunks than threads involves only as many threads as it has chunks: the other
// workers let it pass without touching it. Each takes its own chunks one at a time; the caller then
// takes what the others have not started, and returns when every chunk is done. A worker that has not
// woken by the time the caller runs out leaves its chunks to the caller, so a busy core (another
// program) delays nothing but its own share.
//
// Who does which chunk varies; what a chunk computes does not. Every kernel that splits a loop here
// splits it where the result cannot depend on the split: disjoint outputs, each element computed by
// the same formula in the same order as on one thread (a sum splits its output elements, never a
// summed axis). So results are the same bits at every thread count (tests/test_pool.cpp). (Matrix
// products split here too, by kernels/gemm.cpp, with the caveat gemm.hpp gives.)
//
// The workers: get_num_threads() − 1 of them (core/threads.hpp owns the count; the pool reads it at
// each parallel call and resizes when it changed), started on first use and kept. Between calls an
// idle worker watches for the next one a short time — briefly with the pause instruction, then for up
// to 1 ms yielding its core between looks, so it holds no core another thread needs — then sleeps on
// a futex (std::atomic::wait) until woken (pool.cpp has the measurements).
// Only one parallel loop runs at a time: a loop started inside a chunk (a nested call), or on another
// thread while one runs, runs inline on its own thread — as one chunk, inside the pool, so that a
// product within it runs whole there as it would in a chunk (the same bits whether or not another
// thread held the pool). An exception thrown by a chunk stops the
// chunks not yet started and is rethrown on the caller. Chunks write only into memory the caller
// allocated (no tensor is made on a worker: the buffer cache is per thread, core/memory.hpp).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace rwd::kernels {

// parallel_for's part out of line (namespace kernels, not detail: rwd::detail holds the tensor
// internals that kernels/ reaches as detail::).
using RangeFn = void (*)(void* body, std::size_t begin, std::size_t end);
/// Splits [0, n) into chunks of at least `grain` items, each a multiple of `align` long (the last
/// excepted), and runs fn(body, …) on them on the pool and the caller. Inline when it cannot split.
void run_parallel(std::size_t n, std::size_t grain, std::size_t align, RangeFn fn, void* body);

/// body(begin, end) on ranges covering [0, n) once each: split across threads when n ≥ 2·grain (chunk
/// boundaries at multiples of `align`), else body(0, n) on the caller.
template <class Body>
void parallel_for(std::size_t n, std::size_t grain, Body&& body, std::size_t align = 1) {
  if (n < 2 * grain) {
    if (n) body(std::size_t{0}, n);
    return;
  }
  using B = std::remove_reference_t<Body>;
  run_parallel(
      n, grain, align, [](void* b, std::size_t begin, std::size_t end) { (*static_cast<B*>(b))(begin, end); },
      const_cast<void*>(static_cast<const void*>(&body)));
}

/// The number of loops split across threads so far (a test's proof that a kernel did split).
std::size_t parallel_regions();

/// How many loops each worker has taken part in (worker 1 first) since the pool last started its
/// workers: a loop of c chunks involves only the caller and the first c − 1 workers (tests).
std::vector<std::uint64_t> worker_joins();

/// True where a parallel loop would run inline: on a pool worker, and on a caller while it runs a
/// loop's chunks or a task of run_tasks (a product there is one BLAS call, not blocks in turn).
bool inside_pool();

// Thread profiling (rwd::set_thread_profiling, core/threads.hpp), counted here and in gemm.cpp: off,
// it costs each large product and each split loop one relaxed load.
extern std::atomic<bool> g_profiling;
inline bool profiling() { return g_profiling.load(std::memory_order_relaxed); }
/// Counts one product that took `ns` on its caller (split or not); while it runs, its own split loop
/// is not counted as a loop (ProductScope).
void count_product(std::uint64_t ns, bool split);
/// Marks the calling thread as inside a counted product for its lifetime.
struct ProductScope {
  bool previous;
  ProductScope();
  ~ProductScope();
};
/// The steady clock in nanoseconds.
std::uint64_t now_ns();

/// Runs fn(body, 0) on the caller and fn(body, 1) on a worker, at the same time (two independent
/// pieces of work: the two directions of a bidirectional layer, autograd/detail/beside.hpp). When no
/// worker is free — one thread, the pool busy with another loop, a call from inside a chunk — or
/// none takes it in time, the caller runs fn(body, 1) itself after fn(body, 0), inside the pool as
/// the worker would (their products whole: the same bits either way). Loops started inside
/// either run inline on their thread (one loop at a time: see above). Task 0 always runs on the
/// caller. An exception from either is rethrown here once both have stopped (the other may not start).
using TaskFn = void (*)(void* body, int task);
void run_tasks(TaskFn fn, void* body);

/// first() on the caller and second() beside it on a worker when one is free (run_tasks).
template <class First, class Second>
void run_two(First&& first, Second&& second) {
  struct Both {
    std::remove_reference_t<First>* a;
    std::remove_reference_t<Second>* b;
  } both{&first, &second};
  run_tasks(
      [](void* p, int task) {
        Both& t = *static_cast<Both*>(p);
        if (task == 0) (*t.a)();
        else (*t.b)();
      },
      &both);
}

// Grains: the fewest items a chunk takes; a loop splits from 2·grain. Measured on 2 cores (AVX2,
// float32, 10th percentile of 2000 calls on a busy machine), the same buffers again and again: an add
// of n elements on 1 thread / split on 2 takes 1.01 / 0.95 µs at n = 16384, 2.00 / 1.48 at 32768,
// 4.01 / 2.73 at 65536; tanh 1.40 / 1.01 at 8192, 2.68 / 1.76 at 16384; handing a loop to a waiting
// worker and joining it costs ~0.15 µs back to back, ~0.4 µs when the worker sleeps. In a training
// step, though, each op reads what the one before wrote, and a chunk split off to another core moves
// its data between the cores' caches: with these grains at 16384 / 4096, lstm_medium and gru_medium
// at 2 threads ran 4–6% slower than without the pool (best rounds: 58.9 / 47.5 ms against 56.3 /
// 44.6); at 65536 / 16384 level with it (56.4 / 45.1). That was with OpenBLAS's own threads beside
// the pool. Since the products split on the pool too (kernels/gemm.hpp, session 7; Cooperlake kernels,
// 2 threads, three alternated runs, ms a step lstm_medium / gru_medium / rnn_medium): 65536 / 16384
// 21.4–22.0 / 17.3–18.0 / 5.41–5.62; 16384 / 4096 20.9–21.0 / 16.9–18.5 / 5.33–5.56; 8192 / 2048
// 20.3–20.8 / 16.3–17.1 / 5.22–5.80 — so now a cell step's gates split too (lstm_medium's 1024×64).
inline constexpr std::size_t grain_cheap = 8192;    // add, mul, copies, casts: a load and a store
inline constexpr std::size_t grain_math = 2048;     // tanh, sigmoid, exp, log, pow: ~10–30 flops each
inline constexpr std::size_t grain_update = 4096;   // an optimizer's update (Adam: sqrt and a divide)

}  // namespace rwd::kernels
