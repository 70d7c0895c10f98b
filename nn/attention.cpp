#include "attention.hpp"

#include <cmath>
#include <limits>

#include "../autograd/ops.hpp"
#include "detail/sequence_mask.hpp"
#include "init.hpp"

namespace rwd {

std::string to_string(AttentionKind kind) {
  switch (kind) {
    case AttentionKind::additive: return "additive";
    case AttentionKind::dot: return "dot";
    case AttentionKind::general: return "general";
  }
  return "?";
}

AttentionMemory AttentionMemory::select(const Indices& columns) const {
  if (!memory.defined()) throw ValueError("AttentionMemory::select: the memory is empty: prepare() it first");
  // No columns would be a batch-0 memory, which prepare() refuses (and attend() could not use).
  if (columns.empty())
    throw ValueError("AttentionMemory::select: no columns picked from memory " + memory.shape().str() +
                     ": batch 0 is refused");
  for (std::size_t k = 0; k < columns.size(); ++k)
    if (columns[k] < 0 || static_cast<std::size_t>(columns[k]) >= batch())
      throw ValueError("AttentionMemory::select: column " + std::to_string(columns[k]) + " at position " +
                       std::to_string(k) + " is out of range [0, " + std::to_string(batch()) + ") for memory " +
                       memory.shape().str());
  AttentionMemory out;
  out.memory = index_select(memory, 2, columns);
  // dot and general attention read the memory itself as keys: pick it once.
  out.keys = keys.same(memory) ? out.memory : index_select(keys, 2, columns);
  if (mask.defined()) out.mask = index_select(mask, 1, columns);
  return out;
}

Attention::Attention(AttentionKind kind, std::size_t query_size, std::size_t memory_size, AttentionOptions options,
                     Generator& gen)
    : m_kind(kind), m_query(query_size), m_memory(memory_size), m_attention(0) {
  check_size("Attention", "query_size", query_size);
  check_size("Attention", "memory_size", memory_size);
  switch (kind) {
    case AttentionKind::additive:
      m_attention = options.attention_size ? options.attention_size : memory_size;
      weight_query = register_parameter("weight_query", init::uniform_fan_in({m_attention, m_query}, m_query, gen, options.dtype));
      weight_key = register_parameter("weight_key", init::uniform_fan_in({m_attention, m_memory}, m_memory, gen, options.dtype));
      v = register_parameter("v", init::uniform_fan_in({m_attention}, m_attention, gen, options.dtype));
      break;
    case AttentionKind::dot:
      if (query_size != memory_size)
        throw ShapeError("Attention(dot): the query size (" + std::to_string(query_size) + ") must equal the memory size (" +
                         std::to_string(memory_size) + "): the score is mᵀq — use general or additive attention between different sizes");
      break;
    case AttentionKind::general:
      weight = register_parameter("weight", init::uniform_fan_in({m_memory, m_query}, m_query, gen, options.dtype));
      break;
  }
}

AttentionMemory Attention::prepare(const Tensor& memory, const Tensor& mask) const {
  refuse_undefined(memory, "the memory");
  const Shape s = memory.shape();
  if (s.ndim() != 3 || s[1] != m_memory)
    throw ShapeError(repr() + ": memory " + s.str() + ": expected (time, " + std::to_string(m_memory) +
                     ", batch) — a sequence in rewind's layout (time, features, batch)");
  if (s[0] == 0) throw ValueError(repr() + ": memory " + s.str() + " has zero time steps: there is nothing to attend to");
  refuse_batch_0(s, "memory");
  check_dtype(memory, "memory");
  const std::size_t T = s[0], B = s[2];

  AttentionMemory out;
  out.memory = memory;
  if (mask.defined()) {
    const std::vector<double> values = detail::checked_mask(repr(), mask, T, B);
    for (std::size_t b = 0; b < B; ++b) {
      bool any = false;
      for (std::size_t t = 0; t < T && !any; ++t) any = values[t * B + b] != 0;
      if (!any)
        throw ValueError(repr() + ": mask " + mask.shape().str() + ": column " + std::to_string(b) +
                         " has no real step — attention needs at least one (a softmax over no step is 0/0)");
    }
    out.mask = Tensor::from_vector(values, {T, B}, memory.dtype());
  }
  if (m_kind == AttentionKind::additive) {
    // keys = W_k·m_t for every t as one product: (A, M)·(M, T·B), the memory's features brought to the
    // front first (column t·B + b is m[t, :, b]); laid out (A, T, B) so a step adds W_q q as (A, 1, B).
    const Tensor features_first = reshape(permute(memory, {1, 0, 2}), {m_memory, T * B});
    out.keys = reshape(matmul(weight_key, features_first), {m_attention, T, B});
  } else {
    out.keys = memory;
  }
  return out;
}

void Attention::check_query(const Tensor& query, const AttentionMemory& memory) const {
  if (!memory.memory.defined()) throw ValueError(repr() + ": the memory is empty: prepare() it first");
  refuse_undefined(query, "the query");
  const Shape q = query.shape();
  const std::size_t B = memory.batch();
  if (q.ndim() != 2 || q[0] != m_query || q[1] != B)
    throw ShapeError(repr() + ": query " + q.str() + " does not fit memory " + memory.memory.shape().str() +
                     ": expected (" + std::to_string(m_query) + ", " + std::to_string(B) +
                     ") — (query_size, batch), the memory's batch");
  check_dtype(query, "query");
  if (query.dtype() != memory.memory.dtype())
    throw DtypeError(repr() + ": query is " + dtype_name(query.dtype()) + " but the memory is " +
                     dtype_name(memory.memory.dtype()));
}

Tensor Attention::scores(const Tensor& query, const AttentionMemory& memory) const {
  check_query(query, memory);
  const std::size_t T = memory.time(), B = memory.batch();
  switch (m_kind) {
    case AttentionKind::additive: {
      // score[t, b] = vᵀ tanh(W_q q_b + keys[:, t, b]): the (A, B) query term broadcast over time,
      // then v as a (1, A) row times every (A,) column at once.
      const Tensor e = tanh(memory.keys + reshape(matmul(weight_query, query), {m_attention, 1, B}));
      return reshape(matmul(reshape(v, {1, m_attention}), reshape(e, {m_attention, T * B})), {T, B});
    }
    case AttentionKind::dot:
      // score[t, b] = Σ_f m[t, f, b]·q[f, b]
      return sum(memory.keys * reshape(query, {1, m_memory, B}), {1});
    case AttentionKind::general:
      // score[t, b] = m[t, :, b]ᵀ (W q_b): W applied to the query (one product per step), not to the memory
      return sum(memory.keys * reshape(matmul(weight, query), {1, m_memory, B}), {1});
  }
  return {};
}

AttentionOutput Attention::attend(const Tensor& query, const AttentionMemory& memory) const {
  Tensor score = scores(query, memory);
  // Padded steps score −∞: the softmax's exp(−∞ − …) is exactly 0, so their weight is 0.0 and no
  // gradient reaches them (the `where` sends the masked branch's gradient to the constant).
  if (memory.mask.defined())
    score = where(memory.mask, score, Tensor::scalar(-std::numeric_limits<double>::infinity(), score.dtype()));
  const Tensor weights = softmax(score, 0);
  // context[:, b] = Σ_t weights[t, b]·m[t, :, b]
  const std::size_t T = memory.time(), B = memory.batch();
  const Tensor context = sum(memory.memory * reshape(weights, {T, 1, B}), {0});
  return {context, weights};
}

AttentionOutput Attention::forward(const Tensor& query, const Tensor& memory, const Tensor& mask) const {
  return attend(query, prepare(memory, mask));
}

Tensor Attention::forward(const Tensor&) {
  throw ValueError(repr() + ": attention needs a query and a memory: call forward(query, memory, mask) or "
                   "prepare(memory, mask) then attend(query, prepared)");
}

std::string Attention::repr() const {
  std::string s = "Attention(" + to_string(m_kind) + ", " + std::to_string(m_query) + " => " + std::to_string(m_memory);
  if (m_kind == AttentionKind::additive) s += ", " + std::to_string(m_attention);
  return s + ")";
}

}  // namespace rwd
