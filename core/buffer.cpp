#include <cstdlib>
#include <new>
#include <unordered_map>
#include <vector>

#include "detail/buffer.hpp"
#include "memory.hpp"

// Under AddressSanitizer the cache is off, so that a use after free of tensor values is still caught.
#if defined(__SANITIZE_ADDRESS__)
#define REWIND_BUFFER_CACHE 0
#else
#define REWIND_BUFFER_CACHE 1
#endif

namespace rwd {

namespace {

constexpr std::size_t alignment = 64;

std::size_t rounded(std::size_t bytes) { return (bytes + alignment - 1) / alignment * alignment + (bytes == 0 ? alignment : 0); }

// Sizes up to small_limit have a list each, found by index; larger ones are found by hashing.
constexpr std::size_t small_limit = 64 * 1024;

struct Cache {
  std::vector<void*> small[small_limit / alignment + 1];      // by rounded size / alignment
  std::unordered_map<std::size_t, std::vector<void*>> free;  // by rounded size, above small_limit
  std::vector<void*>& list(std::size_t n) { return n <= small_limit ? small[n / alignment] : free[n]; }
  BufferCacheStats stats{0, REWIND_BUFFER_CACHE ? std::size_t{1} << 30 : 0, 0, 0};
  ~Cache();
  void trim(std::size_t limit) {
    auto drop = [&](std::vector<void*>& l, std::size_t n) {
      while (!l.empty() && stats.cached_bytes > limit) {
        std::free(l.back());
        l.pop_back();
        stats.cached_bytes -= n;
      }
    };
    for (auto& [n, l] : free) drop(l, n);
    for (std::size_t i = 0; i <= small_limit / alignment; ++i) drop(small[i], i * alignment);
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

Cache::~Cache() { trim(0); }

}  // namespace

namespace detail {

void* buffer_allocate(std::size_t bytes) {
  const std::size_t n = rounded(bytes);
  if (Cache* cp = cache()) {
    Cache& c = *cp;
    std::vector<void*>* l = nullptr;
    if (n <= small_limit) {
      l = &c.small[n / alignment];
    } else {
      auto it = c.free.find(n);
      if (it != c.free.end()) l = &it->second;
    }
    if (l && !l->empty()) {
      void* p = l->back();
      l->pop_back();
      c.stats.cached_bytes -= n;
      ++c.stats.hits;
      return p;
    }
    ++c.stats.misses;
  }
  void* p = std::aligned_alloc(alignment, n);
  if (!p) throw std::bad_alloc();
  return p;
}

void buffer_release(void* p, std::size_t bytes) noexcept {
  if (!p) return;
  const std::size_t n = rounded(bytes);
  if (Cache* cp = cache()) {
    Cache& c = *cp;
    if (c.stats.cached_bytes + n <= c.stats.limit_bytes) {
      try {
        c.list(n).push_back(p);
        c.stats.cached_bytes += n;
        return;
      } catch (...) {  // no memory for the list: fall through and free it
      }
    }
  }
  std::free(p);
}

}  // namespace detail

void set_buffer_cache_limit(std::size_t bytes) {
  if (Cache* c = cache()) {
    c->stats.limit_bytes = bytes;
    c->trim(bytes);
  }
}

void release_buffer_cache() {
  if (Cache* c = cache()) c->trim(0);
}

BufferCacheStats buffer_cache_stats() {
  const Cache* c = cache();
  return c ? c->stats : BufferCacheStats{};
}

}  // namespace rwd
