// rewind/core/random.hpp — seeded, reproducible random numbers.
//
// The generator is MT19937 seeded like NumPy's legacy `RandomState(seed)`, and `uniform()` and
// `normal()` use NumPy's exact formulas, so `Generator(42)` draws the same numbers as
// `np.random.RandomState(42).rand()` / `.randn()`. Results do not depend on the platform's
// standard library distributions.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace rwd {

/// A seeded random number generator (MT19937, NumPy-compatible draws).
class Generator {
 public:
  /// A generator seeded with `seed`, as NumPy's `RandomState(seed)`.
  explicit Generator(std::uint32_t seed = 0);
  /// A copy of the whole state (the cached normal included): it draws what the original would.
  Generator(const Generator&);
  /// Takes a copy of the other's whole state.
  Generator& operator=(const Generator&);
  /// Takes over the other's state; the moved-from generator may only be assigned to or destroyed.
  Generator(Generator&&) noexcept;
  /// Takes over the other's state; the moved-from generator may only be assigned to or destroyed.
  Generator& operator=(Generator&&) noexcept;
  ~Generator();

  /// Restarts the stream from `seed`.
  void seed(std::uint32_t seed);
  /// The next raw 32-bit draw.
  std::uint32_t next_u32();
  /// Uniform in [0, 1) with 53 random bits (NumPy's `random_sample`).
  double uniform();
  /// Uniform in [lo, hi).
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  /// Standard normal (NumPy's legacy polar method, pairs cached).
  double normal();
  /// Uniform integer in [0, n).
  std::uint64_t integer(std::uint64_t n);

 private:
  friend class GeneratorLog;
  void noticed();  // tells the thread's GeneratorLogs about a draw (one branch when there is none)
  struct State;
  std::unique_ptr<State> m_state;
};

/// While it lives, keeps a copy of every Generator as it was before its first draw on this thread:
/// what a computation that must run again with the same random numbers (autograd/checkpoint.hpp:
/// dropout inside a checkpoint) restores before it re-runs. Logs nest; each sees every draw.
class GeneratorLog {
 public:
  GeneratorLog();
  ~GeneratorLog();
  GeneratorLog(const GeneratorLog&) = delete;
  GeneratorLog& operator=(const GeneratorLog&) = delete;
  /// The generators drawn from so far, in order of first draw, each with its state before that draw.
  std::vector<std::pair<Generator*, Generator>> take() { return std::move(m_seen); }

 private:
  friend class Generator;
  std::vector<std::pair<Generator*, Generator>> m_seen;
  GeneratorLog* m_outer;
};

/// For one scope, puts generators back in the states a GeneratorLog took (each before its first draw),
/// and where they were when the scope ends (also on a throw): what a computation run again with the
/// same random numbers draws from (a checkpoint's re-run, autograd/checkpoint.hpp).
class ReplayDraws {
 public:
  /// Sets each generator of `saved` (GeneratorLog::take()) to the state saved with it.
  explicit ReplayDraws(const std::vector<std::pair<Generator*, Generator>>& saved) {
    for (const auto& [g, before] : saved) {
      m_now.emplace_back(g, *g);
      *g = before;
    }
  }
  /// Puts each generator back in the state it had when the scope began.
  ~ReplayDraws() {
    for (auto& [g, now] : m_now) *g = now;
  }
  ReplayDraws(const ReplayDraws&) = delete;
  ReplayDraws& operator=(const ReplayDraws&) = delete;

 private:
  std::vector<std::pair<Generator*, Generator>> m_now;
};

/// The thread's default generator, used when no generator is passed.
Generator& default_generator();

/// Reseeds the thread's default generator.
void manual_seed(std::uint32_t seed);

}  // namespace rwd
