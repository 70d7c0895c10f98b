// The pool of pool.hpp: workers, the hand-off of one loop, and its join.
//
// One loop at a time (m_lock). The caller publishes the loop (m_job), bumps m_generation and wakes
// the sleeping workers (only when some sleep: a futex call costs a system call); every participant
// then claims the chunks of its own share (deal), then what is left of the others' (run_chunks). The
// caller returns once job.done counts every chunk and no worker still holds a pointer to the job
// (m_holding), which lives on the caller's stack.
#include "pool.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "../core/threads.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace rwd::kernels {

namespace {

void pause() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

// The caller's wait for a worker to let go of the job (it is between two instructions: brief): spin
// a little, then give up the core.
void backoff(unsigned i) {
  if (i < 4096) pause();
  else std::this_thread::yield();
}

// How an idle worker waits for the next loop: it watches for kSpinPause with the pause instruction
// (the kernels of one cell step come a few microseconds apart; a spinning worker takes a loop in
// ~0.15 µs), then up to kSpinYield calling sched_yield between looks, then sleeps on a futex (a wake
// costs the caller ~0.3 µs and the worker 10–50 µs, so the caller then does most chunks itself).
// Yielding is how it cooperates with OpenBLAS's threads, which wait the same way (sched_yield) after
// each product: a worker and an OpenBLAS thread sharing a core each give it up when the other has
// work. Measured on this 2-core machine while it was busy (load 6–8; lstm_medium / gru_medium at 2
// threads, ms per step, 3 alternated rounds): without the pool 85–93 / 70–72; pause alone for 50 µs
// after each loop 103–143 / 86–145 (the spinning worker held the core OpenBLAS's thread needed for
// the next product); no spin 90–99 / 68–98; yield for 50 µs 89–94 / 70–74. The short pause phase
// is for the back-to-back loops, where a yield's system call would cost more than the wait.
// (Those figures are from before the products split on this pool, with OpenBLAS's threads beside it.)
// Now that the matrix products split here too (kernels/gemm.hpp; OpenBLAS on one thread), no OpenBLAS
// thread waits beside the workers, and a cell step's products come more than 50 µs apart in the
// backward sweep: yielding for 1 ms instead of 50 µs keeps a worker from falling asleep between them
// (four alternated runs at 2 threads, Cooperlake kernels: lstm_medium 22.4–22.8 ms a step against
// 23.3–23.5, gru_medium 18.0–18.5 against 19.0–19.6).
constexpr auto kSpinPause = std::chrono::microseconds(5);
constexpr auto kSpinYield = std::chrono::microseconds(1000);

// Chunks per thread: more than one, so a worker that starts late (still waking, its core busy with
// something else) leaves the rest of its share to the caller instead of holding up the join.
constexpr std::size_t kChunksPerThread = 4;

// Each participant's share of a loop's chunks: [next, end) still to claim, its owner first. Padded
// to a cache line each: the owner claims from its own line, and another participant touches it only
// to take what the owner has not started.
struct alignas(64) Share {
  std::atomic<std::uint32_t> next{0};
  std::uint32_t end = 0;
  std::atomic<std::uint64_t> joined{0};  // loops this participant (a worker) took part in: tests
};

// A loop as the participants see it. What every participant reads (the first line: written once by
// the caller before it publishes the job) and what they write (`done`, on a line of its own) are kept
// apart, so a participant counting its chunks done does not take away the line the others are about
// to read the loop from.
struct Job {
  RangeFn fn;
  void* body;
  std::size_t n, chunk;
  std::uint32_t chunks;
  std::uint32_t participants = 0;
  Share* shares = nullptr;  // one per participant (the pool's, reused: one loop at a time)
  void (*first)(void*) = nullptr;  // run by the caller alone, once the job is published (run_tasks)
  void* first_body = nullptr;
  std::atomic<bool> failed{false};
  alignas(64) std::atomic<std::uint32_t> done{0};  // chunks finished (or skipped after a failure); a futex word
  std::atomic<bool> caller_sleeps{false};  // the caller waits on `done` (the last chunk's finisher wakes it)
  std::exception_ptr error;  // the first exception, written by the one that set `failed`
};

// Thread profiling's counts (core/threads.hpp), in nanoseconds where timed.
struct Counts {
  std::atomic<std::uint64_t> products{0}, products_split{0}, products_ns{0};
  std::atomic<std::uint64_t> loops{0}, loops_ns{0}, chunks_ns{0}, join_ns{0};
};
Counts g_counts;
thread_local bool t_in_product = false;  // inside a counted product: its split loop is the product's

// True on a worker, and on a caller while it runs chunks: a parallel loop started there runs inline
// (the pool is busy with the loop it is part of).
thread_local bool t_inside = false;

// Runs chunk c (skipped after a failure); the caller of this counts it done (count_done). Returns the
// nanoseconds it took when the profile counts (added up by run_chunks: one add a participant a loop).
std::uint64_t run_chunk(Job& job, std::size_t c) {
  if (job.failed.load(std::memory_order_relaxed)) return 0;
  const std::size_t begin = c * job.chunk, end = std::min(job.n, begin + job.chunk);
  const std::uint64_t t0 = profiling() ? now_ns() : 0;
  try {
    job.fn(job.body, begin, end);
  } catch (...) {
    if (!job.failed.exchange(true)) job.error = std::current_exception();
  }
  return t0 ? now_ns() - t0 : 0;
}

// Counts `ran` chunks done, in one add: a participant counts its run of chunks once, when it has run
// them all (at 16 threads a 65536-element tanh has 32 chunks; one add each on the line the caller's
// join watches was 32 transfers of it between cores, now at most one a participant).
void count_done(Job& job, std::uint32_t ran) {
  if (!ran) return;
  // The caller announces its sleep, then looks at `done`; this adds, then looks at the announcement:
  // one of the two sees the other. The job outlives this: run() waits for m_holding to drop.
  if (job.done.fetch_add(ran) + ran == job.chunks && job.caller_sleeps.load()) job.done.notify_one();
}

// Participant `self` (0: the caller; worker i: i + 1) runs its own share of the chunks in order; the
// caller then takes what is left of the others' (a worker still waking, a core busy with something
// else), so it never waits on a late one. Own shares first: a loop's chunk p covers the same elements
// as the previous loop's of that size, and the products' block p (kernels/gemm.hpp) the same rows, so
// what a thread writes its next loop mostly reads from its own core's cache. Taken in turn from one shared
// counter, as before, the chunks moved between cores from loop to loop: on 2 threads here (Zen 5,
// two alternated runs of each) lstm_medium's split loops took 4.35–4.44 ms a step against 4.14 now,
// its step 20.8–21.0 ms against 20.3–20.7, lstm_large's 176–179 against 172.4–172.7. On a CPU
// with more cores, each with its own L2 and further apart, it should count for more; unmeasured.
// (At most threads·kChunksPerThread + 1 chunks: `done` fits 32 bits.)
void run_chunks(Job& job, std::uint32_t self) {
  // Only the caller takes from the others: it waits for them all anyway, and a worker that scanned
  // every other share after its own would hold up the join (the caller waits for it to let go of the
  // job) by a cache miss a participant — at 16 threads, 15 of them, for a loop whose chunks went to
  // 8. A worker returns once its own share is done.
  const std::uint32_t parts = self == 0 ? job.participants : 1;
  for (std::uint32_t k = 0; k < parts; ++k) {
    Share& share = job.shares[(self + k) % job.participants];
    if (k && share.next.load(std::memory_order_relaxed) >= share.end) continue;  // nothing to take
    std::uint32_t ran = 0;
    std::uint64_t ns = 0;
    for (;;) {
      const std::uint32_t c = share.next.fetch_add(1, std::memory_order_relaxed);
      if (c >= share.end) break;
      ns += run_chunk(job, c);
      ++ran;
    }
    if (ns) g_counts.chunks_ns.fetch_add(ns, std::memory_order_relaxed);
    count_done(job, ran);
    if (job.done.load(std::memory_order_relaxed) >= job.chunks) return;  // all taken and finished
  }
}

// Deals the chunks out among the first P participants, P = min(threads, chunks) (+ 1 with
// `skip_caller`, run_tasks: the caller runs a task of its own and the workers share the chunks):
// participant p's share is [⌈p·chunks/P⌉, ⌈(p+1)·chunks/P⌉). The workers past P take no part in the
// loop — they see it published, and go back to waiting without touching it (Pool::work): at 16
// threads a 16384-element add has two chunks, and fourteen workers reading the job, claiming an empty
// share and counting themselves in and out on the shared lines the caller's join reads would only
// delay it. Returns P.
std::uint32_t deal(Job& job, Share* shares, std::uint32_t threads, bool skip_caller) {
  const std::uint32_t parts = std::min<std::uint32_t>(threads, job.chunks + (skip_caller ? 1 : 0));
  job.shares = shares;
  job.participants = parts;
  const std::uint64_t first = skip_caller ? 1 : 0, owners = parts - first, chunks = job.chunks;
  if (skip_caller) {
    shares[0].next.store(0, std::memory_order_relaxed);
    shares[0].end = 0;
  }
  for (std::uint64_t q = 0; q < owners; ++q) {
    Share& s = shares[first + q];
    s.next.store(static_cast<std::uint32_t>((q * chunks + owners - 1) / owners), std::memory_order_relaxed);
    s.end = static_cast<std::uint32_t>(((q + 1) * chunks + owners - 1) / owners);
  }
  return parts;
}

class Pool {
 public:
  // Runs the job on the caller and up to `threads` − 1 workers; false when another loop holds the
  // pool (the caller then runs it inline).
  bool run(Job& job, std::size_t threads) {
    std::unique_lock<std::mutex> lock(m_lock, std::try_to_lock);
    if (!lock.owns_lock()) return false;
    if (m_workers.size() != threads - 1 && !resize(threads - 1)) return false;
    m_needed.store(deal(job, m_shares.get(), static_cast<std::uint32_t>(m_workers.size() + 1), job.first != nullptr));
    m_job.store(&job);
    m_generation.fetch_add(1);
    if (m_sleepers.load() > 0) m_generation.notify_all();
    if (job.first) {  // the caller's own task, while the workers take the chunks
      try {
        job.first(job.first_body);
      } catch (...) {
        if (!job.failed.exchange(true)) job.error = std::current_exception();
      }
    }
    run_chunks(job, 0);
    // The chunks still running are on workers: wait for them, spinning a little, then asleep (a worker
    // preempted mid-chunk on a busy machine may take milliseconds to finish it; yielding in a loop
    // meanwhile burnt whole seconds of system time in a benchmark run).
    const std::uint64_t waited = profiling() ? now_ns() : 0;
    for (unsigned i = 0;; ++i) {
      const std::uint32_t done = job.done.load(std::memory_order_acquire);
      if (done >= job.chunks) break;
      if (i < 4096) {
        pause();
        continue;
      }
      job.caller_sleeps.store(true);
      if (job.done.load() == done) job.done.wait(done);
    }
    m_job.store(nullptr);
    for (unsigned i = 0; m_holding.load() > 0; ++i) backoff(i);
    if (waited) g_counts.join_ns.fetch_add(now_ns() - waited, std::memory_order_relaxed);
    m_regions.fetch_add(1, std::memory_order_relaxed);
    return true;
  }

  std::size_t regions() const { return m_regions.load(std::memory_order_relaxed); }

  // Loops each worker took part in so far (index 0: worker 1); zeros after a resize.
  std::vector<std::uint64_t> joins() {
    std::lock_guard<std::mutex> lock(m_lock);
    std::vector<std::uint64_t> out;
    for (std::size_t i = 0; i < m_workers.size(); ++i) out.push_back(m_shares[i + 1].joined.load());
    return out;
  }

 private:
  // Stops every worker and starts `count` new ones; false (and no workers) if the system refuses.
  bool resize(std::size_t count) {
    m_stop.store(true);
    m_generation.fetch_add(1);
    m_generation.notify_all();
    for (std::thread& t : m_workers) t.join();
    m_workers.clear();
    m_stop.store(false);
    m_shares = std::make_unique<Share[]>(count + 1);
    try {
      // Each starts from the generation now, so the loop about to be published is one it runs.
      const std::uint32_t now = m_generation.load();
      for (std::size_t i = 0; i < count; ++i) {
        const auto self = static_cast<std::uint32_t>(i + 1);
        m_workers.emplace_back([this, now, self] { work(now, self); });
      }
    } catch (const std::system_error&) {
      resize(0);
      return count == 0;
    }
    return true;
  }

  // A worker: wait for the next generation, run the loop's chunks, repeat.
  void work(std::uint32_t seen, std::uint32_t self) {
    t_inside = true;
    for (;;) {
      wait_for_next(seen);
      seen = m_generation.load(std::memory_order_acquire);
      if (m_stop.load()) return;
      // Not one of the loop's participants: back to waiting. (A late worker may read a later loop's
      // count, or an earlier one's; either way it only decides whether this one runs its share — the
      // caller takes whatever a participant does not.)
      if (self >= m_needed.load()) continue;
      m_holding.fetch_add(1);  // before reading m_job: run() waits for 0 after clearing it
      if (Job* job = m_job.load()) {
        m_shares[self].joined.fetch_add(1, std::memory_order_relaxed);
        run_chunks(*job, self);
      }
      m_holding.fetch_sub(1);
    }
  }

  // Watches m_generation (pause, then yield: see kSpinPause), then sleeps on it (futex) until it moves.
  void wait_for_next(std::uint32_t seen) {
    const auto start = std::chrono::steady_clock::now();
    for (unsigned i = 1;; ++i) {
      if (m_generation.load(std::memory_order_acquire) != seen) return;
      pause();
      if (i % 64 == 0 && std::chrono::steady_clock::now() - start >= kSpinPause) break;
    }
    while (std::chrono::steady_clock::now() - start < kSpinYield) {
      if (m_generation.load(std::memory_order_acquire) != seen) return;
      std::this_thread::yield();
    }
    // Announce the sleep before the last look (run() bumps, then reads m_sleepers: one of the two sees
    // the other).
    m_sleepers.fetch_add(1);
    while (m_generation.load() == seen) m_generation.wait(seen);
    m_sleepers.fetch_sub(1);
  }

  // Laid out by who touches what, a cache line each: the caller's own (the lock, the workers, the
  // count of loops); the line every idle worker watches, written once a loop by the caller and
  // otherwise only read; the count of workers holding the job, which each participant adds to and
  // takes from twice a loop; the sleepers' count. In one line, as they were, each participant's adds
  // took the watched line away from the fourteen workers polling it at 16 threads, each of which then
  // missed to read it again.
  std::mutex m_lock;  // one loop at a time
  std::vector<std::thread> m_workers;
  std::unique_ptr<Share[]> m_shares = std::make_unique<Share[]>(1);  // one per participant (deal)
  std::atomic<std::size_t> m_regions{0};
  alignas(64) std::atomic<std::uint32_t> m_generation{0};  // bumped for each loop (and to stop the workers)
  std::atomic<std::uint32_t> m_needed{0};  // the loop's participants, the caller included (deal)
  std::atomic<Job*> m_job{nullptr};        // the loop running now
  std::atomic<bool> m_stop{false};
  alignas(64) std::atomic<int> m_holding{0};   // workers that may hold m_job's pointer
  alignas(64) std::atomic<int> m_sleepers{0};  // workers asleep (or about to be) on m_generation
};

// Never destroyed: its sleeping workers end with the process, and a kernel run from another static
// object's destructor still finds it.
Pool& pool() {
  static Pool* p = new Pool;
  return *p;
}

// Sets t_inside for one scope.
struct Inside {
  bool previous = t_inside;
  Inside() { t_inside = true; }
  ~Inside() { t_inside = previous; }
};

}  // namespace

void run_parallel(std::size_t n, std::size_t grain, std::size_t align, RangeFn fn, void* body) {
  const int threads = get_num_threads();
  if (threads < 2 || t_inside) return fn(body, 0, n);
  align = std::max<std::size_t>(align, 1);
  const std::size_t t = static_cast<std::size_t>(threads);
  // Chunks of at least `grain`, about kChunksPerThread per thread, at multiples of `align`.
  std::size_t chunk = std::max(grain, (n + t * kChunksPerThread - 1) / (t * kChunksPerThread));
  chunk = (chunk + align - 1) / align * align;
  const std::size_t chunks = (n + chunk - 1) / chunk;
  if (chunks < 2) return fn(body, 0, n);
  Job job;
  job.fn = fn;
  job.body = body;
  job.n = n;
  job.chunk = chunk;
  job.chunks = static_cast<std::uint32_t>(chunks);
  const std::uint64_t t0 = profiling() && !t_in_product ? now_ns() : 0;
  {
    Inside inside;
    // Another thread's loop holds the pool: the whole loop here, as one chunk of it — inside the pool,
    // so a product in the body runs whole, as in a chunk, not split into blocks (another order of
    // addition: gemm.hpp), and the bits do not depend on what another thread was doing meanwhile.
    if (!pool().run(job, t)) return fn(body, 0, n);  // the workers stay t − 1 (no resize for a loop of few chunks)
  }
  if (t0) {
    g_counts.loops.fetch_add(1, std::memory_order_relaxed);
    g_counts.loops_ns.fetch_add(now_ns() - t0, std::memory_order_relaxed);
  }
  if (job.error) std::rethrow_exception(job.error);
}

void run_tasks(TaskFn fn, void* body) {
  const int threads = get_num_threads();
  // Task 1 is the job's one chunk, for a worker to claim; the caller runs task 0 itself once the job is
  // published, then claims task 1 if no worker has (a loaded machine: the worker not yet awake). So
  // task 0 runs on the caller, always — its thread-local state (the current tape, grad mode, the sweep's
  // statistics) is the caller's.
  struct Two {
    TaskFn fn;
    void* body;
  } two{fn, body};
  Job job;
  job.fn = [](void* p, std::size_t, std::size_t) {
    Two& t = *static_cast<Two*>(p);
    t.fn(t.body, 1);
  };
  job.body = &two;
  job.n = 1;
  job.chunk = 1;
  job.chunks = 1;
  job.first = [](void* p) {
    Two& t = *static_cast<Two*>(p);
    t.fn(t.body, 0);
  };
  job.first_body = &two;
  bool ran = false;  // one thread, a call from inside a chunk, or another thread's loop holding the pool: in turn
  if (threads >= 2 && !t_inside) {
    Inside inside;
    ran = pool().run(job, static_cast<std::size_t>(threads));
  }
  if (!ran) {
    Inside inside;  // as on the pool (both tasks' products whole): the same bits whichever way they ran
    fn(body, 0);
    fn(body, 1);
    return;
  }
  if (job.error) std::rethrow_exception(job.error);
}

std::size_t parallel_regions() { return pool().regions(); }

std::vector<std::uint64_t> worker_joins() { return pool().joins(); }

bool inside_pool() { return t_inside; }

std::atomic<bool> g_profiling{false};

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

void count_product(std::uint64_t ns, bool split) {
  g_counts.products.fetch_add(1, std::memory_order_relaxed);
  if (split) g_counts.products_split.fetch_add(1, std::memory_order_relaxed);
  g_counts.products_ns.fetch_add(ns, std::memory_order_relaxed);
}

ProductScope::ProductScope() : previous(t_in_product) { t_in_product = true; }
ProductScope::~ProductScope() { t_in_product = previous; }

}  // namespace rwd::kernels

namespace rwd {

void set_thread_profiling(bool on) { kernels::g_profiling.store(on, std::memory_order_relaxed); }

ThreadProfile thread_profile() {
  const auto& c = kernels::g_counts;
  auto ms = [](const std::atomic<std::uint64_t>& ns) { return static_cast<double>(ns.load()) / 1e6; };
  ThreadProfile p;
  p.products = c.products.load();
  p.products_split = c.products_split.load();
  p.products_ms = ms(c.products_ns);
  p.loops_split = c.loops.load();
  p.loops_split_ms = ms(c.loops_ns);
  p.chunks_ms = ms(c.chunks_ns);
  p.join_wait_ms = ms(c.join_ns);
  return p;
}

void reset_thread_profile() {
  auto& c = kernels::g_counts;
  for (auto* a : {&c.products, &c.products_split, &c.products_ns, &c.loops, &c.loops_ns, &c.chunks_ns, &c.join_ns})
    a->store(0);
}

}  // namespace rwd
