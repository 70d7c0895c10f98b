// The members of Tensor that need the tape (core/tensor.hpp declares them; core/ itself knows
// nothing of tapes, so they are defined here, one layer up): backward, to, set_requires_grad.
#include "../core/detail/impl.hpp"
#include "backward.hpp"
#include "ops.hpp"
#include "tape.hpp"

namespace rwd {

Tensor& Tensor::set_requires_grad(bool enabled) {
  detail::TensorImpl& p = impl();
  if (p.node >= 0 && !enabled)
    throw TapeError("set_requires_grad: '" + std::string((*p.tape)[p.node].op) +
                    "' output is recorded on the tape; use detach() to cut its history");
  p.requires_grad = enabled;
  return *this;
}

void Tensor::backward() const { rwd::backward(*this); }

void Tensor::backward(const Tensor& seed, bool retain, bool create_graph) const {
  rwd::backward(*this, seed, SweepOptions{retain, create_graph, false});
}

Tensor Tensor::to(Dtype dtype) const { return cast(*this, dtype); }

}  // namespace rwd
