// rewind/nn/dropout.hpp — dropout, active in training mode only.
#pragma once

#include <cstdint>
#include <optional>

#include "../core/random.hpp"
#include "module.hpp"

namespace rwd {

/// In training mode, zeroes each element with probability p and scales the rest by 1/(1−p)
/// (inverted dropout, so evaluation is the identity). Its own generator makes runs reproducible:
/// seeded with `seed`, or drawn from the default generator (so manual_seed() fixes it too).
class Dropout : public Module {
 public:
  /// Drop probability p in [0, 1) (else ValueError), as PyTorch's nn.Dropout(p); see the class for `seed`.
  explicit Dropout(double p, std::optional<std::uint32_t> seed = std::nullopt);

  Tensor forward(const Tensor& x) override;
  std::string repr() const override;
  /// The drop probability.
  double p() const { return m_p; }

 private:
  double m_p;
  Generator m_gen;
};

}  // namespace rwd
