// tests/support.hpp — small helpers several test files share.
#pragma once

#include <doctest/doctest.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "../autograd/ops.hpp"
#include "../autograd/tape.hpp"
#include "../core/blas.hpp"
#include "../core/npz.hpp"
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

/// Whether a process's memory is its own to measure: not under AddressSanitizer, whose quarantine and
/// per-thread caches hold what the program freed (tens of MiB across a few dozen threads).
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool k_memory_measurable = false;
#else
inline constexpr bool k_memory_measurable = true;
#endif

/// The process's peak resident memory growth, in bytes, while `f` runs: Linux's peak (VmHWM) is reset
/// to the current size first (/proc/self/clear_refs, "5"), so earlier peaks cannot hide this one.
inline std::uint64_t peak_growth(const std::function<void()>& f) {
  auto read_kb = [](const char* field) -> std::uint64_t {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
      if (line.rfind(field, 0) == 0) return std::stoull(line.substr(std::strlen(field)));
    return 0;
  };
  {
    std::ofstream clear("/proc/self/clear_refs");
    clear << "5";
    clear.close();
    REQUIRE_MESSAGE(clear, "cannot reset the peak RSS through /proc/self/clear_refs");
  }
  const std::uint64_t before = read_kb("VmRSS:");
  REQUIRE(read_kb("VmHWM:") <= before + 1024);  // the reset took
  f();
  const std::uint64_t peak = read_kb("VmHWM:");
  return peak > before ? (peak - before) * 1024 : 0;
}

/// A fresh directory `<prefix>-<pid>-<n>-<random>` under the system's temp directory, removed with
/// everything in it (its permissions restored first, for tests that make it read-only).
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "rewind-test") {
    static std::atomic<unsigned> counter{0};
    std::random_device rd;
    m_path = std::filesystem::temp_directory_path() /
             (prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(m_path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::permissions(m_path, std::filesystem::perms::owner_all, std::filesystem::perm_options::add, ec);
    std::filesystem::remove_all(m_path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator/(const std::string& name) const { return (m_path / name).string(); }
  const std::filesystem::path& path() const { return m_path; }
  /// The names of the files in the directory.
  std::set<std::string> files() const {
    std::set<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(m_path)) names.insert(e.path().filename().string());
    return names;
  }

 private:
  std::filesystem::path m_path;
};

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

/// A gather/scatter index of `shape` into an axis of size n: (7·k + 3) mod n at flat position k, which
/// repeats and reorders.
inline rwd::Indices spread_index(const rwd::Shape& shape, std::size_t n) {
  rwd::Indices idx(shape.numel());
  for (std::size_t k = 0; k < idx.size(); ++k) idx[k] = static_cast<std::int64_t>((7 * k + 3) % n);
  return idx;
}

/// `s` with axis `axis` of extent `size`.
inline rwd::Shape with_dim(rwd::Shape s, std::size_t axis, std::size_t size) {
  s[axis] = size;
  return s;
}

/// Whether `text` contains `part`.
inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

/// CHECK that `text` contains `part`, printing both when it does not. Evaluates `text` once (it is
/// often a message_of call, which must not run twice).
#define CHECK_CONTAINS_ONCE(text, part)                                                                             \
  do {                                                                                                              \
    const std::string check_text_ = (text), check_part_ = (part);                                                   \
    CHECK_MESSAGE(contains(check_text_, check_part_), "\"" << check_text_ << "\" lacks \"" << check_part_ << "\""); \
  } while (false)

/// A PyTorch reference file under tests/ref, loaded once: at(key) fails the test naming a missing key.
class RefFile {
 public:
  explicit RefFile(const std::filesystem::path& relative) : m_name(relative.filename().string()) {
    for (auto& [k, t] : rwd::load_npz((test_ref_dir() / relative).string())) m_tensors.emplace(k, t);
  }
  /// Every key and tensor, in key order.
  const std::map<std::string, rwd::Tensor>& all() const { return m_tensors; }
  /// The tensor under `key` (REQUIRE: it is there).
  const rwd::Tensor& at(const std::string& key) const {
    const auto it = m_tensors.find(key);
    REQUIRE_MESSAGE(it != m_tensors.end(), m_name << " has no key " << key);
    return it->second;
  }
  /// Its values, flat.
  std::vector<double> vec(const std::string& key) const { return at(key).to_vector(); }
  /// Its values as class labels.
  std::vector<std::int64_t> labels(const std::string& key) const {
    std::vector<std::int64_t> out;
    for (double v : vec(key)) out.push_back(static_cast<std::int64_t>(v));
    return out;
  }

 private:
  std::string m_name;
  std::map<std::string, rwd::Tensor> m_tensors;
};

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
