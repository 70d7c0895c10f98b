// Resource limits: shapes too large to index, allocations the system refuses, tensors with no
// elements, and the bound on the buffer cache under shapes that vary from step to step.
#include <doctest/doctest.h>
#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "core/memory.hpp"
#include "core/npz.hpp"
#include "core/random.hpp"
#include "core/shape.hpp"
#include "core/tensor.hpp"
#include "core/threads.hpp"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <cstdint>
#include <fstream>
#include <limits>
#include <random>
#include <vector>

#include "../support.hpp"

using namespace rwd;

// A request the system cannot meet must come back as an exception, not abort the process: under
// AddressSanitizer an allocation it cannot serve aborts unless allocator_may_return_null is set. This
// default applies to the whole test binary; ASAN_OPTIONS in the environment still overrides it.
#if defined(__SANITIZE_ADDRESS__)
extern "C" const char* __asan_default_options() { return "allocator_may_return_null=1"; }
#endif

namespace {
constexpr std::size_t big = std::size_t{1} << 62;
}

TEST_CASE("limits: a shape whose element count or strides overflow is refused with a ShapeError naming it") {
  SUBCASE("the element count wraps") {
    const std::string m = message_of<ShapeError>([] { Tensor::zeros({big, 8}); });
    CHECK(contains(m, "(4611686018427387904, 8)"));
    CHECK(contains(m, "36893488147419103232"));  // 2^65, the true count
  }
  SUBCASE("the element count fits size_t but not the signed byte offsets (8 bytes an element)") {
    // 2^61 elements: 2^64 bytes for float64, past PTRDIFF_MAX.
    const std::string m = message_of<ShapeError>([] { Shape{std::size_t{1} << 31, std::size_t{1} << 30}; });
    CHECK(contains(m, "(2147483648, 1073741824)"));
  }
  SUBCASE("a zero dimension does not excuse the strides of the others") {
    // xtensor computes each stride as the product of the later dimensions: (0, 2^62, 2^62) has a
    // stride of 2^62 elements for axis 1 although the tensor is empty.
    const std::string m = message_of<ShapeError>([] { Shape{0, big, big}; });
    CHECK(contains(m, "(0, 4611686018427387904, 4611686018427387904)"));
    message_of<ShapeError>([] { Tensor::zeros({0, big, big}); });
  }
  SUBCASE("every maker of a Shape checks") {
    message_of<ShapeError>([] { Shape s; s.push_back(big); s.push_back(8); });
    const std::size_t dims[] = {big, 2};
    message_of<ShapeError>([&] { Shape(dims, 2); });
    const std::vector<std::size_t> v = {big, 4};
    message_of<ShapeError>([&] { Shape(v.begin(), v.end()); });
  }
  SUBCASE("a shape changed through operator[] is checked again before a tensor is made of it") {
    Shape s{2, 3};
    s[0] = big;  // now (2^62, 3): the element count wraps
    message_of<ShapeError>([&] { s.numel(); });
    message_of<ShapeError>([&] { Tensor::zeros(s); });
    message_of<ShapeError>([&] { Tensor::randn(s); });
    message_of<ShapeError>([&] { Tensor::uniform(s, 0, 1); });
    message_of<ShapeError>([&] { Tensor::full(s, 2.0); });
    message_of<ShapeError>([&] { Tensor::from_vector(std::vector<double>{1, 2, 3}, s); });
  }
  SUBCASE("arange checks its length before making anything") {
    message_of<ShapeError>([] { Tensor::arange(std::numeric_limits<std::size_t>::max()); });
  }
  SUBCASE("broadcasting two valid shapes into one too large") {
    const std::string m = message_of<ShapeError>([] {
      broadcast_shapes("add", Shape{std::size_t{1} << 40, 1}, Shape{1, std::size_t{1} << 40});
    });
    CHECK(contains(m, "add"));
    CHECK(contains(m, "(1099511627776, 1099511627776)"));
  }
  SUBCASE("the largest shapes that fit are accepted") {
    const std::size_t most = static_cast<std::size_t>(PTRDIFF_MAX) / 8;
    CHECK(Shape{most}.numel() == most);
    CHECK(Shape{most, 1, 0}.numel() == 0);
    message_of<ShapeError>([&] { Shape{most + 1}; });
  }
}

TEST_CASE("limits: an allocation the system refuses is a MemoryError naming the shape and the bytes") {
  // 2^61 bytes (2 EiB) lies past any machine's address space, so no overcommit setting serves it,
  // while its 2^59 elements are a valid shape.
  SUBCASE("2 EiB float32") {
    const std::string m = message_of<MemoryError>([] { Tensor::zeros({std::size_t{1} << 40, std::size_t{1} << 19}); });
    CHECK(contains(m, "(1099511627776, 524288)"));
    CHECK(contains(m, "2305843009213693952 bytes"));
    CHECK(contains(m, "float32"));
  }
  SUBCASE("2 EiB float64, from randn") {
    const std::string m =
        message_of<MemoryError>([] { Tensor::randn({std::size_t{1} << 39, std::size_t{1} << 19}, float64); });
    CHECK(contains(m, "(549755813888, 524288)"));
    CHECK(contains(m, "2305843009213693952 bytes"));
  }
  SUBCASE("4 TiB float32: a valid shape the machine cannot hold") {
    // With overcommit always on (vm.overcommit_memory = 1) Linux would grant the 4 TiB and zeros()
    // would then fault in pages until the OOM killer came; the heuristic (0) and strict (2) modes
    // refuse it on any machine with less than 4 TiB of memory and swap.
    std::ifstream mode("/proc/sys/vm/overcommit_memory");
    int overcommit = 0;
    mode >> overcommit;
    if (overcommit == 1) {
      MESSAGE("vm.overcommit_memory is 1: the 4 TiB allocation is skipped");
      return;
    }
    const std::string m = message_of<MemoryError>([] { Tensor::zeros({std::size_t{1} << 38, 4}); });  // 2^40 floats
    CHECK(contains(m, "tensor (274877906944, 4) float32"));
    CHECK(contains(m, "4398046511104 bytes"));
  }
  SUBCASE("MemoryError is an rwd::Error") {
    bool caught = false;
    try {
      Tensor::zeros({std::size_t{1} << 40, std::size_t{1} << 19});
    } catch (const Error&) {
      caught = true;
    }
    CHECK(caught);
  }
}

TEST_CASE("limits: tensors with no elements print like NumPy's") {
  CHECK(Tensor::zeros({0}).str() == "tensor([], shape=(0,), dtype=float32)");
  CHECK(Tensor::zeros({2, 0, 3}).str() == "tensor([], shape=(2, 0, 3), dtype=float32)");
  CHECK(Tensor::zeros({3, 0}, float64).str() == "tensor([], shape=(3, 0), dtype=float64)");
  CHECK(Tensor::zeros({0, 4}).str() == "tensor([], shape=(0, 4), dtype=float32)");
  // A one-element tensor and a scalar still print their value.
  CHECK(Tensor::zeros({1, 1}).str() == "tensor([[0]], shape=(1, 1), dtype=float32)");
  CHECK(Tensor::scalar(2).str() == "tensor(2, shape=(), dtype=float32)");
}

namespace {

// One step of a recurrent model as the allocator sees it: for each time step a few buffers whose sizes
// follow the batch (gates, states, their adjoints), all live until the step ends, then freed together.
std::size_t training_step(std::size_t batch, std::size_t len) {
  std::vector<Tensor> live;
  std::size_t bytes = 0;
  for (std::size_t t = 0; t < len; ++t)
    for (std::size_t rows : {16, 64, 256, 64, 256}) {
      live.push_back(Tensor::zeros({rows, batch}));
      bytes += rows * batch * 4;
    }
  return bytes;
}

}  // namespace

TEST_CASE("limits: the buffer cache stays within a small multiple of one step's working set") {
  const std::size_t limit_before = buffer_cache_stats().limit_bytes;
  set_buffer_cache_limit(std::size_t{1} << 30);
  release_buffer_cache();
  std::mt19937 rng(7);
  std::uniform_int_distribution<std::size_t> batch(1, 64), len(1, 50);
  std::size_t largest_step = 0, most_cached = 0, over_bound = 0;
  for (int i = 0; i < 3000; ++i) {
    largest_step = std::max(largest_step, training_step(batch(rng), len(rng)));
    const BufferCacheStats s = buffer_cache_stats();
    most_cached = std::max(most_cached, s.cached_bytes);
    if (s.cached_bytes > 2 * s.working_set_bytes) ++over_bound;  // the bound memory.hpp states
  }
  INFO("largest step " << largest_step << " bytes, most cached " << most_cached << " bytes");
  CHECK(most_cached > 0);
  CHECK(over_bound == 0);
  CHECK(most_cached <= 3 * largest_step);
  release_buffer_cache();
  set_buffer_cache_limit(limit_before);
}

TEST_CASE("limits: a thread that frees buffers another thread made keeps its cache bounded") {
  // The consumer of a producer thread (a part of a computation run on another thread, a data loader):
  // each step it makes and frees its own 20 tensors and frees 20 the producer made. Its bytes in use
  // fall by those 20 at every step; were its working set measured from them, its bound would widen
  // without end and its cache keep every buffer it is sent (core/buffer.cpp, buffer_release).
  const std::size_t limit_before = buffer_cache_stats().limit_bytes;
  set_buffer_cache_limit(std::size_t{1} << 30);
  release_buffer_cache();
  const Shape shape{64, 64};  // 16 KiB in float32
  std::mutex m;
  std::condition_variable cv;
  std::vector<Tensor> handed;
  bool want = false, stop = false;
  std::thread producer([&] {
    for (;;) {
      std::unique_lock<std::mutex> lock(m);
      cv.wait(lock, [&] { return want || stop; });
      if (stop) return;
      for (int k = 0; k < 20; ++k) handed.push_back(Tensor::ones(shape));
      want = false;
      cv.notify_all();
    }
  });
  std::size_t most_cached = 0;
  const std::size_t step_bytes = 20 * shape.numel() * sizeof(float);
  for (int step = 0; step < 400; ++step) {
    std::vector<Tensor> received;
    {
      std::unique_lock<std::mutex> lock(m);
      want = true;
      cv.notify_all();
      cv.wait(lock, [&] { return !want; });
      received.swap(handed);
    }
    std::vector<Tensor> own;
    for (int k = 0; k < 20; ++k) own.push_back(Tensor::zeros(shape));
    own.clear();
    received.clear();
    most_cached = std::max(most_cached, buffer_cache_stats().cached_bytes);
  }
  {
    std::lock_guard<std::mutex> lock(m);
    stop = true;
  }
  cv.notify_all();
  producer.join();
  INFO("most cached " << most_cached << " bytes; one step makes " << step_bytes);
  CHECK(most_cached >= step_bytes);       // it does cache (its own step's buffers)
  CHECK(most_cached <= 4 * step_bytes);   // 400 steps received 400 × that
  release_buffer_cache();
  set_buffer_cache_limit(limit_before);
}

TEST_CASE("limits: the buffer cache serves a warm step of repeated shapes entirely from freed buffers") {
  const std::size_t limit_before = buffer_cache_stats().limit_bytes;
  set_buffer_cache_limit(std::size_t{1} << 30);
  release_buffer_cache();
  // Varying steps first, so the cache holds other sizes too, then one shape repeated.
  std::mt19937 rng(8);
  std::uniform_int_distribution<std::size_t> batch(1, 64), len(1, 50);
  for (int i = 0; i < 200; ++i) training_step(batch(rng), len(rng));
  training_step(33, 40);
  training_step(33, 40);
  const BufferCacheStats warm = buffer_cache_stats();
  for (int i = 0; i < 20; ++i) training_step(33, 40);
  const BufferCacheStats after = buffer_cache_stats();
  CHECK(after.misses == warm.misses);
  CHECK(after.hits - warm.hits >= 20 * 40 * 5);
  release_buffer_cache();
  set_buffer_cache_limit(limit_before);
}
