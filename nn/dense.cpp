#include "dense.hpp"

#include "../autograd/ops.hpp"
#include "init.hpp"

namespace rwd {

Dense::Dense(std::size_t in, std::size_t out, Activation activation, bool with_bias, Dtype dtype, Generator& gen)
    : m_in(in), m_out(out), m_activation(std::move(activation)) {
  check_size("Dense", "in", in);
  check_size("Dense", "out", out);
  weight = register_parameter("weight", init::glorot_uniform({out, in}, gen, dtype));
  if (with_bias) bias = register_parameter("bias", init::zeros({out}, dtype));
}

Tensor Dense::forward(const Tensor& x) {
  const Shape s = x.shape();
  if ((s.ndim() != 1 && s.ndim() != 2) || s[0] != m_in)
    throw ShapeError(repr() + ": input " + s.str() + ": expected (" + std::to_string(m_in) + ", batch) or (" +
                     std::to_string(m_in) + ",) — features along axis 0" +
                     (s.ndim() == 3 ? std::string("; for a sequence (time, features, batch), apply it at every step "
                                                  "with TimeDistributed(Dense(…))")
                                    : std::string()));
  refuse_batch_0(x);
  check_dtype(x);
  return m_activation(affine(weight, x, bias));
}

Tensor Dense::forward_sequence(const Tensor& x) {
  const Shape s = x.shape();
  if (s.ndim() != 3 || s[1] != m_in)
    throw ShapeError(repr() + ": sequence " + s.str() + ": expected (time, " + std::to_string(m_in) + ", batch)");
  // Zero steps are no columns at all: refused, as an empty batch is (and as TimeDistributed refuses them).
  if (s[0] == 0)
    throw ValueError(repr() + ": sequence " + s.str() + " has zero time steps: an empty sequence is refused");
  refuse_batch_0(x);
  check_dtype(x);
  return m_activation(affine_seq(weight, x, bias));
}

std::string Dense::repr() const {
  std::string s = "Dense(" + std::to_string(m_in) + " => " + std::to_string(m_out);
  if (!m_activation.is_identity()) s += ", " + m_activation.name;
  if (!bias.defined()) s += ", bias=false";
  return s + ")";
}

}  // namespace rwd
