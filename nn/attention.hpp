// rewind/nn/attention.hpp — attention over a sequence memory: additive (Bahdanau) and multiplicative
// (Luong's dot and general) scores, a masked softmax over time, and the weighted sum of the memory.
//
// Layout. The memory is a sequence in rewind's layout, (time, features, batch) — an encoder's outputs
// (Recurrent returns them so) — with an optional (time, batch) mask, 1 at real steps and 0 at padding
// (mask_from_lengths of nn/sequence.hpp). A query is one decoder step, (query_size, batch). One call
// gives, per batch column b,
//
//     score[t, b]   = score(q_b, m[t, :, b])                       (time, batch)
//     weights[:, b] = softmax_t(score[:, b]) over the real steps    (time, batch), each column sums to 1
//     context[:, b] = Σ_t weights[t, b] · m[t, :, b]               (memory_size, batch)
//
// with the scores
//
//     additive  (Bahdanau et al. 2015):  score = vᵀ tanh(W_q q + W_k m_t)     v (A,), W_q (A, Q), W_k (A, M)
//     dot       (Luong et al. 2015):     score = m_tᵀ q                        (Q = M), no parameters
//     general   (Luong et al. 2015):     score = m_tᵀ W q                      W (M, Q)
//
// Keys once per sequence. A decoder asks for attention once per output step over the same memory, so
// everything that depends on the memory alone is computed once by prepare(): for additive attention
// the keys W_k·m_t of every step (one product over all time steps), for general attention the query
// side is projected instead (W q: one (M, Q) product per step rather than T of them). attend() then
// does only the per-step work.
//
// Padding gets exactly zero weight. Padded scores are replaced by −∞ (where(), a constant branch)
// before the softmax, which is exp(x − max − log Σ exp(x − max)): exp(−∞) is exactly 0 in IEEE
// arithmetic, so a padded step's weight is 0.0 — not ε — and its memory column contributes exactly
// nothing to the context, whatever it holds (garbage, NaN excepted: 0·NaN is NaN, so the memory's
// padding must be finite; Recurrent's is zeros). No gradient reaches a padded score either (exp's
// backward multiplies by its output, 0). Every column needs at least one real step (a ValueError
// otherwise: a softmax over nothing is 0/0), and a mask holds only 0 and 1 (either dtype).
//
// Everything is a composition of the tape's primitives (affine, matmul, tanh, where, softmax, sum,
// mul); there is no backward code here. Bad shapes throw ShapeError naming the layer and the shapes;
// a dtype differing from the parameters', DtypeError.
#pragma once

#include <cstddef>
#include <string>

#include "../autograd/ops.hpp"
#include "../core/random.hpp"
#include "module.hpp"

namespace rwd {

/// Which score an Attention computes (see the top of this file).
enum class AttentionKind {
  additive,  ///< Bahdanau: vᵀ tanh(W_q q + W_k m)
  dot,       ///< Luong dot: mᵀ q (query_size must equal memory_size)
  general,   ///< Luong general: mᵀ W q
};

/// "additive", "dot" or "general".
std::string to_string(AttentionKind kind);

/// A memory made ready for attention by Attention::prepare: the memory, its keys and its mask.
/// Holds tape values: use it within the tape (training step) it was made on.
struct AttentionMemory {
  Tensor memory;  ///< (time, memory_size, batch), as given
  Tensor keys;    ///< additive: W_k·memory laid out (A, time, batch); dot/general: the memory itself
  Tensor mask;    ///< (time, batch) in the memory's dtype, 1 at real steps; undefined = every step real
  /// Steps of the memory (its axis 0).
  std::size_t time() const { return memory.dim(0); }
  /// Batch columns of the memory (its axis 2).
  std::size_t batch() const { return memory.dim(2); }
  /// The same memory with its batch columns picked (and repeated) by `columns` — a beam's hypotheses
  /// each reading their source's memory. Recorded (index_select), so gradients flow back. No columns,
  /// or one outside [0, batch), is a ValueError.
  AttentionMemory select(const Indices& columns) const;
};

/// What one attention step returns.
struct AttentionOutput {
  Tensor context;  ///< (memory_size, batch): Σ_t weights[t]·memory[t]
  Tensor weights;  ///< (time, batch): softmax over time, exactly 0 at padded steps, each column sums to 1
};

/// Options of Attention: `{.attention_size = 64, .dtype = float64}`.
struct AttentionOptions {
  std::size_t attention_size = 0;  ///< A, the additive score's hidden size; 0 = memory_size (ignored by dot/general)
  Dtype dtype = Dtype::f32;        ///< dtype of the parameters
};

/// Attention of a query over a (time, features, batch) memory with an optional (time, batch) mask:
///
///   Attention attn(AttentionKind::additive, 128, 256);      // query 128, memory 256 → Attention(additive, 128 => 256, 256)
///   AttentionMemory mem = attn.prepare(encoder_outputs, mask);   // once per source batch
///   AttentionOutput out = attn.attend(h_t, mem);            // once per decoder step: context, weights
///   AttentionOutput out = attn(h_t, encoder_outputs, mask);  // prepare + attend in one call
///
/// Parameters (PyTorch-style keys; initialized U(−1/√fan_in, 1/√fan_in) like nn.Linear, v with
/// fan_in A): additive `weight_query` (A, Q), `weight_key` (A, M), `v` (A,); general `weight` (M, Q);
/// dot none. Prints as `Attention(additive, 128 => 256, 256)`: kind, query => memory, A.
class Attention : public Module {
 public:
  /// An attention of `kind` between queries of `query_size` rows and a memory of `memory_size`
  /// features. Throws ValueError for a size 0, ShapeError for dot with query_size ≠ memory_size.
  Attention(AttentionKind kind, std::size_t query_size, std::size_t memory_size, AttentionOptions options = {},
            Generator& gen = default_generator());

  /// Checks the memory (time, memory_size, batch) and the mask (time, batch) — 0/1 values, at least one
  /// real step per column — and computes what depends on the memory alone (the additive keys).
  AttentionMemory prepare(const Tensor& memory, const Tensor& mask = {}) const;
  /// One step: the query (query_size, batch) against a prepared memory of the same batch.
  AttentionOutput attend(const Tensor& query, const AttentionMemory& memory) const;
  /// prepare(memory, mask) then attend(query, …): for a single step.
  AttentionOutput forward(const Tensor& query, const Tensor& memory, const Tensor& mask = {}) const;
  /// forward(query, memory, mask).
  AttentionOutput operator()(const Tensor& query, const Tensor& memory, const Tensor& mask = {}) const {
    return forward(query, memory, mask);
  }
  /// Not a one-input layer: throws ValueError pointing to forward(query, memory, mask).
  Tensor forward(const Tensor& x) override;

  /// The scores (time, batch) of a query before masking and softmax (for tests and inspection).
  Tensor scores(const Tensor& query, const AttentionMemory& memory) const;

  /// Like `Attention(additive, 128 => 256, 256)`: kind, query => memory, A.
  std::string repr() const override;
  /// The score this layer computes.
  AttentionKind kind() const { return m_kind; }
  /// Q, the rows of a query.
  std::size_t query_size() const { return m_query; }
  /// M, the features of the memory.
  std::size_t memory_size() const { return m_memory; }
  /// A for additive attention; 0 for dot and general.
  std::size_t attention_size() const { return m_attention; }

  Tensor weight_query;  ///< additive: (A, Q); undefined otherwise
  Tensor weight_key;    ///< additive: (A, M); undefined otherwise
  Tensor v;             ///< additive: (A,); undefined otherwise
  Tensor weight;                       ///< general: (M, Q); undefined otherwise

 private:
  void check_query(const Tensor& query, const AttentionMemory& memory) const;
  AttentionKind m_kind;
  std::size_t m_query, m_memory, m_attention;
};

}  // namespace rwd
