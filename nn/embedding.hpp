// rewind/nn/embedding.hpp — a lookup table of learned vectors.
#pragma once

#include "../autograd/ops.hpp"
#include "../core/random.hpp"
#include "module.hpp"

namespace rwd {

/// Row i of `weight` (num, dim) is the vector of token i (PyTorch's nn.Embedding layout; initialized
/// N(0, 1) like PyTorch). Looking up ids of shape S gives features along the axis before the batch:
/// ids (batch,) → (dim, batch); ids (time, batch) → (time, dim, batch). The gradient reaches only the
/// rows looked up (repeats add up).
class Embedding : public Module {
 public:
  /// A table of `num` vectors of `dim` features, weight (num, dim) drawn N(0, 1) from `gen`.
  Embedding(std::size_t num, std::size_t dim, Dtype dtype = Dtype::f32, Generator& gen = default_generator());

  /// ids as integers: (batch,) → (dim, batch).
  Tensor forward(const Indices& ids);
  /// ids as integers laid out as `shape`, (batch,) → (dim, batch) or (time, batch) row-major → (time,
  /// dim, batch): a batch of token sequences straight from integer data (an .npz's labels, a tokenizer).
  Tensor forward(const Indices& ids, const Shape& shape);
  /// ids as a tensor of whole numbers of shape (batch,) or (time, batch).
  Tensor forward(const Tensor& ids) override;
  /// forward(ids): `emb({3, 1, 4})`; an id outside [0, num) is a ValueError.
  Tensor operator()(const Indices& ids) { return forward(ids); }
  using Module::operator();
  std::string repr() const override;

  Tensor weight;  ///< (num, dim)

 private:
  std::size_t m_num, m_dim;
};

}  // namespace rwd
