#include "time_distributed.hpp"

#include <typeinfo>

#include "../autograd/ops.hpp"
#include "dense.hpp"

namespace rwd {

// ---- TimeDistributed ----

TimeDistributed::TimeDistributed(std::shared_ptr<Module> layer) : m_layer(std::move(layer)) {
  if (!m_layer) throw ValueError("TimeDistributed: the layer is null");
  register_module("layer", m_layer);
}

Tensor TimeDistributed::forward(const Tensor& x) {
  if (x.ndim() != 3) return (*m_layer)(x);
  const std::size_t T = x.dim(0), F = x.dim(1), B = x.dim(2);
  if (T == 0)
    throw ValueError(repr() + ": sequence " + x.shape().str() + " has zero time steps: an empty sequence is refused");
  refuse_batch_0(x, "sequence");
  // (time, F, batch) → (F, time, batch) → (F, time·batch): step t's columns are t·batch … t·batch + batch − 1.
  // A Dense takes the sequence itself (affine_seq): the same products, one a step into its columns,
  // with no permuted copy of the sequence made or kept (lstm_large's head: 13 MB, and its gradient's).
  // A Dense exactly: a user's class derived from Dense may override forward, which must then run.
  Dense* dense = typeid(*m_layer) == typeid(Dense) ? static_cast<Dense*>(m_layer.get()) : nullptr;
  Tensor y;
  try {
    y = dense && F == dense->in_features() && x.dtype() == dense->weight.dtype()
            ? dense->forward_sequence(x)
            : (*m_layer)(reshape(permute(x, {1, 0, 2}), {F, T * B}));
  } catch (const ShapeError& e) {
    // The layer saw (F, time·batch), a shape the user never made: say what was given, keep its words.
    throw ShapeError(repr() + ": sequence " + x.shape().str() + ", its steps side by side as (" + std::to_string(F) +
                     ", " + std::to_string(T * B) + "): " + e.what());
  } catch (const DtypeError& e) {
    throw DtypeError(repr() + ": sequence " + x.shape().str() + ": " + e.what());
  }
  if (y.ndim() != 2 || y.dim(1) != T * B)
    throw ShapeError(repr() + ": the layer turned (" + std::to_string(F) + ", " + std::to_string(T * B) + ") into " +
                     y.shape().str() + "; it must map (features, batch) to (out, batch)");
  return permute(reshape(y, {y.dim(0), T, B}), {1, 0, 2});
}

}  // namespace rwd
