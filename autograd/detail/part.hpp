// rewind/autograd/detail/part.hpp — what a part of a computation recorded on a tape of its own needs
// (library-internal): a checkpoint's first run (autograd/checkpoint.cpp) and a part run beside the
// rest (autograd/beside.cpp).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "../../core/detail/impl.hpp"
#include "../tape.hpp"

namespace rwd::detail {

/// A stand-in for x inside the part: a view of it (no copy) without history, taking a gradient where
/// x does, so the part computes exactly what it would on x while recording none of x's past.
inline Tensor stand_in(const Tensor& x, const std::string& name) {
  Tensor v = make_view(x, 0, x.shape(), name.c_str());
  if (x.requires_grad()) v.set_requires_grad();
  return v;
}

/// fn(inputs) on the part's tape; a TapeError from it (a tensor with history read from outside the
/// inputs: the part's tape cannot take it) says so, naming the part.
template <class Fn>
std::vector<Tensor> call_part(const Fn& fn, const std::vector<Tensor>& inputs, const std::string& name) {
  try {
    return fn(inputs);
  } catch (const TapeError& e) {
    throw TapeError(std::string(e.what()) + " (inside " + name +
                    ": a tensor with history that the function uses must be passed in its inputs)");
  }
}

/// Throws TapeError, naming the part, unless every tensor the part returned is defined.
inline void check_results_defined(const std::vector<Tensor>& out, const std::string& name) {
  for (std::size_t k = 0; k < out.size(); ++k)
    if (!out[k].defined()) throw TapeError(name + ": the function returned an undefined tensor as result " + std::to_string(k));
}

}  // namespace rwd::detail
