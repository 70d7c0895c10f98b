// tests/support.hpp — small helpers several test files share.
#pragma once

#include <doctest/doctest.h>

#include <cstddef>

#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "../autograd/tape.hpp"
#include "../core/blas.hpp"
#include "../core/threads.hpp"

/// Runs `f`, which must throw an E, and returns the message; a failed check (and "") if it throws
/// nothing or something else.
template <class E, class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL_CHECK("threw the wrong exception type: " << e.what());
    return "";
  }
  FAIL_CHECK("did not throw");
  return "";
}

/// tests/ref, where the PyTorch reference files are (CMake passes its path; else next to this file).
inline std::filesystem::path test_ref_dir() {
#ifdef REWIND_TEST_REF_DIR
  return REWIND_TEST_REF_DIR;
#else
  return std::filesystem::path(__FILE__).parent_path() / "ref";
#endif
}

/// Restores the thread count (rwd::set_num_threads) a test found, however it ends.
struct ThreadCountGuard {
  int before = rwd::get_num_threads();
  ~ThreadCountGuard() { rwd::set_num_threads(before); }
};

/// Restores whether products may run packed (rwd::set_packed_weights), however the test ends.
struct PackedGuard {
  bool before = rwd::packed_weights();
  ~PackedGuard() { rwd::set_packed_weights(before); }
};

/// For one scope, Tape::drop_unread frees unread values at any tape size (by default a tape under
/// 1 MiB keeps them all): for tests that watch values dropped on small tapes.
struct DropAtAnySize {
  std::size_t previous = rwd::detail::set_drop_min_bytes(0);
  DropAtAnySize() = default;
  DropAtAnySize(const DropAtAnySize&) = delete;
  DropAtAnySize& operator=(const DropAtAnySize&) = delete;
  ~DropAtAnySize() { rwd::detail::set_drop_min_bytes(previous); }
};

/// Whether `text` contains `part`.
inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

/// The bytes of file `p` (a failed REQUIRE if it cannot be read).
inline std::string read_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE_MESSAGE(in, "cannot read " << p);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Writes `bytes` to file `p`, replacing it (a failed REQUIRE if it cannot be written).
inline void write_bytes(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE_MESSAGE(out, "cannot write " << p);
}
