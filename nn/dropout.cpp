#include "dropout.hpp"

#include <cstdio>
#include <vector>

#include "../autograd/ops.hpp"

namespace rwd {

Dropout::Dropout(double p, std::optional<std::uint32_t> seed)
    : m_p(p), m_gen(seed ? *seed : default_generator().next_u32()) {
  if (!(p >= 0.0 && p < 1.0)) throw ValueError("Dropout: p must be in [0, 1), got " + format_value(p));
}

// y = x ⊙ m, m = [u ≥ p] / (1 − p): a constant mask, so the gradient is dy ⊙ m.
Tensor Dropout::forward(const Tensor& x) {
  refuse_undefined(x);
  if (!training() || m_p == 0.0) return x;
  std::vector<double> mask(x.numel());
  const double keep = 1.0 / (1.0 - m_p);
  for (double& m : mask) m = m_gen.uniform() >= m_p ? keep : 0.0;
  return x * Tensor::from_vector(mask, x.shape(), x.dtype());
}

std::string Dropout::repr() const {
  char buf[48];
  std::snprintf(buf, sizeof buf, "Dropout(%g)", m_p);
  return buf;
}

}  // namespace rwd
