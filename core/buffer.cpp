#include <algorithm>
#include <cstdint>
#include <iterator>
#include <cstdlib>
#include <string>

#include "detail/buffer.hpp"
#include "error.hpp"
#include "memory.hpp"

// Under AddressSanitizer the cache is off by default, so that a use after free of tensor values is
// still caught. The bytes past a request (up to its class size) and every buffer waiting in the cache
// are poisoned, so an overflow into the rounding, or a use of a released buffer, is caught too.
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define REWIND_BUFFER_CACHE 0
#define REWIND_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define REWIND_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define REWIND_BUFFER_CACHE 1
#define REWIND_POISON(p, n) ((void)(p), (void)(n))
#define REWIND_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace rwd {

namespace {

constexpr std::size_t alignment = 64;

// ---- size classes ----
// A request is rounded up to its class, and a freed buffer waits in its class's list for the next
// request of that class. Up to 1 KiB the classes are the multiples of 64 bytes; above, 8 per
// doubling (9/8, 10/8, … 16/8 of a power of two), so a buffer is at most 12.5% larger than asked and
// batch sizes that differ by a few share a class. The class is found from the leading bit: no hashing.
constexpr std::size_t linear_limit = 1024;
constexpr std::size_t linear_classes = linear_limit / alignment;
constexpr std::size_t largest = std::size_t{1} << 62;  // larger requests are refused outright
constexpr std::size_t n_classes = linear_classes + (62 - 10) * 8;

struct SizeClass {
  std::size_t index;
  std::size_t bytes;  // what is allocated for every request of the class
};

inline SizeClass size_class(std::size_t bytes) {
  if (bytes <= linear_limit) {
    const std::size_t k = bytes ? (bytes + alignment - 1) / alignment : 1;
    return {k - 1, k * alignment};
  }
  const std::size_t m = bytes - 1;
  const int e = 63 - __builtin_clzll(m);       // 2^e <= m < 2^(e+1), e >= 10
  const std::size_t sub = (m >> (e - 3)) & 7;  // the three bits after the leading one
  return {linear_classes + static_cast<std::size_t>(e - 10) * 8 + sub, (9 + sub) << (e - 3)};
}

// ---- the bound ----
// The cache keeps at most twice the working set: the largest rise of the bytes in use above their
// lowest level (peak − floor of `live`) over the last few epochs of `epoch` allocations. A training
// step allocates its tape's values and adjoints on top of a floor (parameters, optimizer state, data)
// and frees them at its end, so the working set is one step's worth, and twice it covers a step that
// frees some buffers and allocates others of other sizes before the end. Sizes that vary from step to
// step can then no longer pile up to the limit: what does not fit is freed at once. Every epoch, a
// class not asked for in the last two epochs gives its buffers back, and the bound is enforced again
// as old peaks age out.
constexpr std::uint64_t epoch = std::uint64_t{1} << 16;
constexpr int epochs_kept = 4;

struct FreeList {
  void* head = nullptr;     // freed buffers, linked through their first bytes
  std::uint64_t asked = 0;  // `tick` of the last request of this class
};

struct Cache {
  FreeList lists[n_classes];
  std::uint64_t held[(n_classes + 63) / 64] = {};  // bit i: lists[i] is not empty
  BufferCacheStats stats{0, REWIND_BUFFER_CACHE ? std::size_t{1} << 30 : 0, 0, 0};
  std::uint64_t tick = 0;  // allocations so far
  // Bytes handed out and not given back, at least zero (a buffer made on another thread may be freed
  // here: buffer_release).
  std::int64_t live = 0;
  std::int64_t peak[epochs_kept] = {}, floor[epochs_kept] = {};  // [0]: this epoch
  std::int64_t old_peak = 0, old_floor = 0;                        // over the kept epochs before it
  // bound(), kept up to date by refresh() whenever what it is computed from changes (a new peak or
  // floor, an epoch, the limit): release reads it on every call, and in a steady loop it never moves.
  std::size_t cap = 0;

  ~Cache() {
    for (std::size_t i = 0; i < n_classes; ++i) drain(i);
  }

  std::size_t working_set() const {
    return static_cast<std::size_t>(std::max(peak[0], old_peak) - std::min(floor[0], old_floor));
  }
  std::size_t bound() const { return std::min(stats.limit_bytes, 2 * working_set()); }
  void refresh() { cap = bound(); }

  // A cached buffer of class k taken off its list (null when it is empty), counted as a hit.
  void* pop(const SizeClass& k) {
    FreeList& l = lists[k.index];
    void* p = l.head;
    if (!p) return nullptr;
    REWIND_UNPOISON(p, sizeof(void*));
    if (!(l.head = *static_cast<void**>(p))) held[k.index / 64] &= ~(std::uint64_t{1} << (k.index % 64));
    stats.cached_bytes -= k.bytes;
    ++stats.hits;
    return p;
  }
  // `bytes` more handed out: a new peak widens the working set, and with it the bound.
  void lend(std::size_t bytes) {
    live += static_cast<std::int64_t>(bytes);
    if (live > peak[0]) {
      peak[0] = live;
      refresh();
    }
  }
  void push(std::size_t i, void* p) {
    FreeList& l = lists[i];
    REWIND_UNPOISON(p, sizeof(void*));
    *static_cast<void**>(p) = l.head;
    REWIND_POISON(p, class_bytes(i));
    l.head = p;
    held[i / 64] |= std::uint64_t{1} << (i % 64);
  }
  // The nonempty class asked for longest ago, n_classes if none.
  std::size_t oldest() const {
    std::size_t found = n_classes;
    for (std::size_t w = 0; w < std::size(held); ++w)
      for (std::uint64_t bits = held[w]; bits; bits &= bits - 1) {
        const std::size_t i = w * 64 + static_cast<std::size_t>(__builtin_ctzll(bits));
        if (found == n_classes || lists[i].asked < lists[found].asked) found = i;
      }
    return found;
  }
  void drain(std::size_t i) {
    FreeList& l = lists[i];
    held[i / 64] &= ~(std::uint64_t{1} << (i % 64));
    const std::size_t bytes = class_bytes(i);
    while (l.head) {
      void* p = l.head;
      REWIND_UNPOISON(p, bytes);
      l.head = *static_cast<void**>(p);
      std::free(p);
      stats.cached_bytes -= bytes;
    }
  }
  static std::size_t class_bytes(std::size_t i) {
    if (i < linear_classes) return (i + 1) * alignment;
    const std::size_t e = 10 + (i - linear_classes) / 8, sub = (i - linear_classes) % 8;
    return (9 + sub) << (e - 3);
  }
  // Frees whole classes, the longest unasked first, until at most `target` bytes are kept.
  void trim(std::size_t target) {
    while (stats.cached_bytes > target) {
      const std::size_t i = oldest();
      if (i == n_classes) return;
      drain(i);
    }
  }
  // Room for `bytes` more of class `k` within the bound, made by freeing classes asked for before k
  // (the sizes a program has stopped using make way for the ones it uses now); false if there is none.
  bool make_room(std::size_t k, std::size_t bytes) {
    while (stats.cached_bytes + bytes > cap) {
      const std::size_t i = oldest();
      if (i == n_classes || i == k || lists[i].asked >= lists[k].asked) return false;
      drain(i);
    }
    return true;
  }
  // Once per epoch: idle classes give their buffers back, old peaks and floors age out.
  void new_epoch() {
    for (std::size_t i = 0; i < n_classes; ++i)
      if (lists[i].head && tick - lists[i].asked > 2 * epoch) drain(i);  // idle for two epochs
    for (int e = epochs_kept - 1; e > 0; --e) peak[e] = peak[e - 1], floor[e] = floor[e - 1];
    peak[0] = floor[0] = live;
    old_peak = peak[1], old_floor = floor[1];
    for (int e = 2; e < epochs_kept; ++e) {
      old_peak = std::max(old_peak, peak[e]);
      old_floor = std::min(old_floor, floor[e]);
    }
    refresh();
    trim(cap);
  }
};

// The cache is reached through a plain thread-local pointer (no initialization guard on the hot
// path); a holder frees it at thread exit. The flag, trivially destructible, stays readable while
// other thread-local objects are destroyed: a tensor freed after the cache has gone (a thread-local or
// static tensor) goes straight to the system.
thread_local Cache* t_cache = nullptr;
thread_local bool t_cache_gone = false;

struct CacheHolder {
  Cache* cache = nullptr;
  ~CacheHolder() {
    delete cache;
    t_cache = nullptr;
    t_cache_gone = true;
  }
};
thread_local CacheHolder t_holder;

Cache* cache() {
  if (t_cache) return t_cache;
  if (t_cache_gone) return nullptr;
  t_cache = new Cache;
  t_holder.cache = t_cache;
  return t_cache;
}

[[noreturn]] void throw_refused(std::size_t bytes) {
  throw MemoryError("cannot allocate " + std::to_string(bytes) + " bytes: the system refused them (out of memory)");
}

}  // namespace

// The common case, a request its class's list can serve and a release its list can keep, is a few
// loads and stores on the thread's cache, inline; everything else (the first call on a thread, a new
// epoch, a miss, a release past the bound) is the out-of-line slow path beside it.
namespace {

[[gnu::noinline]] void* allocate_slow(std::size_t bytes, SizeClass k) {
  Cache* cp = cache();
  void* p = nullptr;
  if (cp) {
    Cache& c = *cp;
    if ((++c.tick & (epoch - 1)) == 0) c.new_epoch();
    c.lists[k.index].asked = c.tick;
    if (!(p = c.pop(k))) ++c.stats.misses;
  }
  if (!p && !(p = std::aligned_alloc(alignment, k.bytes))) throw_refused(bytes);
  REWIND_POISON(p, k.bytes);  // only the bytes asked for are addressable
  REWIND_UNPOISON(p, bytes);
  if (cp) cp->lend(k.bytes);
  return p;
}

// A release that does not fit under the bound: room is made by freeing idle classes, else it is freed.
[[gnu::noinline]] void release_slow(Cache* cp, void* p, SizeClass k) noexcept {
  if (cp && cp->make_room(k.index, k.bytes)) {
    cp->push(k.index, p);
    cp->stats.cached_bytes += k.bytes;
    return;
  }
  REWIND_UNPOISON(p, k.bytes);
  std::free(p);
}

}  // namespace

namespace detail {

void* buffer_allocate(std::size_t bytes) {
  if (bytes > largest) throw_refused(bytes);
  const SizeClass k = size_class(bytes);
  Cache* cp = t_cache;
  if (cp && ((cp->tick + 1) & (epoch - 1)) != 0) {
    Cache& c = *cp;
    if (void* p = c.pop(k)) {
      c.lists[k.index].asked = ++c.tick;
      REWIND_POISON(p, k.bytes);
      REWIND_UNPOISON(p, bytes);
      c.lend(k.bytes);
      return p;
    }
  }
  return allocate_slow(bytes, k);
}

void buffer_release(void* p, std::size_t bytes) noexcept {
  if (!p) return;
  const SizeClass k = size_class(bytes);
  Cache* cp = t_cache;
  if (!cp && !(cp = cache())) return release_slow(nullptr, p, k);  // the thread's cache is gone
  Cache& c = *cp;
  c.live -= static_cast<std::int64_t>(k.bytes);
  if (c.live < c.floor[0]) {
    // Never below zero: a thread that frees buffers another thread made (the consumer of a producer
    // thread, the caller of a part run beside it: autograd/detail/beside.hpp) would otherwise see its
    // floor fall by what it received at every step, its working set — and so its bound — widen
    // without end, and its cache keep every buffer it is sent (measured: a bidirectional LSTM's
    // training process grew by 4 MB a step). At zero its bound is what it allocates itself again.
    if (c.live < 0) c.live = 0;
    if (c.live < c.floor[0]) {
      c.floor[0] = c.live;
      c.refresh();
    }
  }
  if (c.stats.cached_bytes + k.bytes <= c.cap) {
    c.push(k.index, p);
    c.stats.cached_bytes += k.bytes;
    return;
  }
  release_slow(cp, p, k);
}

}  // namespace detail

void set_buffer_cache_limit(std::size_t bytes) {
  if (Cache* c = cache()) {
    c->stats.limit_bytes = bytes;
    c->refresh();
    c->trim(bytes);
  }
}

void release_buffer_cache() {
  if (Cache* c = cache()) {
    c->trim(0);
    // The working set is measured afresh from here: what came before no longer widens the bound.
    for (int e = 0; e < epochs_kept; ++e) c->peak[e] = c->floor[e] = c->live;
    c->old_peak = c->old_floor = c->live;
    c->refresh();
  }
}

BufferCacheStats buffer_cache_stats() {
  const Cache* c = cache();
  if (!c) return BufferCacheStats{};
  BufferCacheStats s = c->stats;
  s.working_set_bytes = c->working_set();
  return s;
}

}  // namespace rwd
