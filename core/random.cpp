#include "random.hpp"

#include <cmath>
#include <random>

namespace rwd {

struct Generator::State {
  std::mt19937 engine;
  bool has_gauss = false;
  double gauss = 0.0;
};

namespace {
thread_local GeneratorLog* t_log = nullptr;  // the innermost live GeneratorLog of this thread
}  // namespace

GeneratorLog::GeneratorLog() : m_outer(t_log) { t_log = this; }
GeneratorLog::~GeneratorLog() { t_log = m_outer; }

void Generator::noticed() {
  for (GeneratorLog* log = t_log; log; log = log->m_outer) {
    bool seen = false;
    for (const auto& s : log->m_seen) seen = seen || s.first == this;
    if (!seen) log->m_seen.emplace_back(this, *this);  // the state before this draw
  }
}

Generator::Generator(std::uint32_t seed) : m_state(std::make_unique<State>()) { this->seed(seed); }
Generator::Generator(const Generator& other) : m_state(std::make_unique<State>(*other.m_state)) {}
Generator& Generator::operator=(const Generator& other) {
  *m_state = *other.m_state;
  return *this;
}
Generator::Generator(Generator&&) noexcept = default;
Generator& Generator::operator=(Generator&&) noexcept = default;
Generator::~Generator() = default;

// std::mt19937(seed) is MT19937's init_genrand, which NumPy's legacy seeding uses for an integer seed.
void Generator::seed(std::uint32_t seed) {
  m_state->engine.seed(seed);
  m_state->has_gauss = false;
}

std::uint32_t Generator::next_u32() {
  if (t_log) noticed();
  return static_cast<std::uint32_t>(m_state->engine());
}

// NumPy's random_sample: 27 + 26 bits from two draws, scaled by 2^-53.
double Generator::uniform() {
  const std::uint32_t a = next_u32() >> 5;
  const std::uint32_t b = next_u32() >> 6;
  return (a * 67108864.0 + b) / 9007199254740992.0;
}

// NumPy's legacy_gauss: Marsaglia's polar method, the second value of each pair cached.
double Generator::normal() {
  if (t_log) noticed();  // a cached value is a draw too: the cache is part of the state
  if (m_state->has_gauss) {
    m_state->has_gauss = false;
    return m_state->gauss;
  }
  double x1, x2, r2;
  do {
    x1 = 2.0 * uniform() - 1.0;
    x2 = 2.0 * uniform() - 1.0;
    r2 = x1 * x1 + x2 * x2;
  } while (r2 >= 1.0 || r2 == 0.0);
  const double f = std::sqrt(-2.0 * std::log(r2) / r2);
  m_state->gauss = f * x1;
  m_state->has_gauss = true;
  return f * x2;
}

// Rejection sampling on a power-of-two mask: unbiased and platform independent.
std::uint64_t Generator::integer(std::uint64_t n) {
  if (n <= 1) return 0;
  std::uint64_t mask = n - 1;
  for (int s = 1; s < 64; s <<= 1) mask |= mask >> s;
  for (;;) {
    std::uint64_t v = next_u32();
    if (mask > 0xffffffffull) v |= static_cast<std::uint64_t>(next_u32()) << 32;
    v &= mask;
    if (v < n) return v;
  }
}

Generator& default_generator() {
  thread_local Generator generator(0);
  return generator;
}

void manual_seed(std::uint32_t seed) { default_generator().seed(seed); }

}  // namespace rwd
