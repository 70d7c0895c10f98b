#include "embedding.hpp"

#include <cmath>

namespace rwd {

Embedding::Embedding(std::size_t num, std::size_t dim, Dtype dtype, Generator& gen) : m_num(num), m_dim(dim) {
  check_size("Embedding", "num", num);
  check_size("Embedding", "dim", dim);
  weight = register_parameter("weight", Tensor::randn({num, dim}, gen, dtype));
}

Tensor Embedding::forward(const Indices& ids) {
  if (ids.empty()) throw ShapeError(repr() + ": no ids: batch 0 is refused (look up at least one id)");
  for (std::size_t k = 0; k < ids.size(); ++k)
    if (ids[k] < 0 || static_cast<std::size_t>(ids[k]) >= m_num)
      throw ValueError(repr() + ": id " + std::to_string(ids[k]) + " at position " + std::to_string(k) +
                       " is out of range [0, " + std::to_string(m_num) + ")");
  return transpose(index_select(weight, 0, ids));  // (batch, dim) → (dim, batch)
}

Tensor Embedding::forward(const Tensor& ids) {
  refuse_undefined(ids, "the ids tensor");
  const Shape s = ids.shape();
  if (s.ndim() != 1 && s.ndim() != 2)
    throw ShapeError(repr() + ": ids " + s.str() + ": expected (batch,) or (time, batch)");
  if (s.ndim() == 2 && s[0] == 0)
    throw ValueError(repr() + ": ids " + s.str() + " have zero time steps: an empty sequence is refused");
  refuse_batch_0(s, "ids");
  // Each id is checked as a double, before the cast: casting NaN, ±inf or anything beyond int64's range
  // to an integer is undefined (it printed as -9223372036854775808).
  const std::vector<double> v = ids.to_vector();
  Indices flat(v.size());
  for (std::size_t k = 0; k < v.size(); ++k) {
    if (!(v[k] >= 0 && v[k] < static_cast<double>(m_num) && v[k] == std::floor(v[k]))) {
      const std::string at = s.ndim() == 1 ? std::to_string(k)
                                           : "(" + std::to_string(k / s[1]) + ", " + std::to_string(k % s[1]) + ")";
      throw ValueError(repr() + ": id " + format_value(v[k]) + " at position " + at + " is not a whole number in [0, " +
                       std::to_string(m_num) + ")");
    }
    flat[k] = static_cast<std::int64_t>(v[k]);
  }
  return forward(flat, s);
}

Tensor Embedding::forward(const Indices& ids, const Shape& s) {
  if (s.ndim() != 1 && s.ndim() != 2)
    throw ShapeError(repr() + ": ids of shape " + s.str() + ": expected (batch,) or (time, batch)");
  if (ids.size() != s.numel())
    throw ShapeError(repr() + ": " + std::to_string(ids.size()) + " ids do not fill the shape " + s.str() + " (" +
                     std::to_string(s.numel()) + ")");
  if (s.ndim() == 2 && s[0] == 0)
    throw ValueError(repr() + ": ids " + s.str() + " have zero time steps: an empty sequence is refused");
  refuse_batch_0(s, "ids");
  if (s.ndim() == 1) return forward(ids);
  for (std::size_t k = 0; k < ids.size(); ++k)
    if (ids[k] < 0 || static_cast<std::size_t>(ids[k]) >= m_num)
      throw ValueError(repr() + ": id " + std::to_string(ids[k]) + " at position (" + std::to_string(k / s[1]) + ", " +
                       std::to_string(k % s[1]) + ") is out of range [0, " + std::to_string(m_num) + ")");
  // (time·batch, dim) → (time, batch, dim) → (time, dim, batch)
  Tensor rows = reshape(transpose(forward(ids)), {s[0], s[1], m_dim});
  return permute(rows, {0, 2, 1});
}

std::string Embedding::repr() const { return "Embedding(" + std::to_string(m_num) + " => " + std::to_string(m_dim) + ")"; }

}  // namespace rwd
