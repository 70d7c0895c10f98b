#include "embedding.hpp"

#include <cmath>

namespace rwd {

Embedding::Embedding(std::size_t num, std::size_t dim, Dtype dtype, Generator& gen) : m_num(num), m_dim(dim) {
  weight = register_parameter("weight", Tensor::randn({num, dim}, gen, dtype));
}

Tensor Embedding::forward(const Indices& ids) {
  for (std::size_t k = 0; k < ids.size(); ++k)
    if (ids[k] < 0 || static_cast<std::size_t>(ids[k]) >= m_num)
      throw ValueError(repr() + ": id " + std::to_string(ids[k]) + " at position " + std::to_string(k) +
                       " is out of range [0, " + std::to_string(m_num) + ")");
  return transpose(index_select(weight, 0, ids));  // (batch, dim) → (dim, batch)
}

Tensor Embedding::forward(const Tensor& ids) {
  const Shape s = ids.shape();
  if (s.ndim() != 1 && s.ndim() != 2)
    throw ShapeError(repr() + ": ids " + s.str() + ": expected (batch,) or (time, batch)");
  Indices flat;
  for (double v : ids.to_vector()) {
    if (v != std::floor(v)) throw ValueError(repr() + ": id " + std::to_string(v) + " is not a whole number");
    flat.push_back(static_cast<std::int64_t>(v));
  }
  if (s.ndim() == 1) return forward(flat);
  // (time·batch, dim) → (time, batch, dim) → (time, dim, batch)
  Tensor rows = reshape(transpose(forward(flat)), {s[0], s[1], m_dim});
  return permute(rows, {0, 2, 1});
}

std::string Embedding::repr() const { return "Embedding(" + std::to_string(m_num) + " => " + std::to_string(m_dim) + ")"; }

}  // namespace rwd
