// rewind/nn/seq2seq.hpp — an encoder–decoder (sequence-to-sequence) model with optional attention:
// teacher forcing for training, greedy and beam-search decoding for inference.
//
// The model (Sutskever et al. 2014; attention and input feeding as Luong et al. 2015):
//
//   source ids (S, B) ─ source_embedding ─ encoder (any Recurrent; bidirectional allowed) ─┐
//        memory m = the encoder's outputs (S, M, B), M = encoder.output_size()              │
//        s₀ = bridge(final states of the encoder's top layer, both directions concatenated) ┘
//   for t = 0 … T−1, y₋₁ = bos:
//     x_t        = [target_embedding(y_{t−1}) ; c_{t−1}]          c₋₁ = 0   (input feeding)
//     h_t, s_t   = decoder.step(x_t, s_{t−1})                      (any Cell; LSTMCell by default)
//     c_t, a_t   = attention(h_t, m, source mask)                  a_t (S, B): weights, exactly 0 on padding
//     h̃_t        = tanh(W_c [h_t ; c_t] + b_c)                     (combine: Luong's attentional hidden)
//     logits_t   = W_o h̃_t + b_o                                   (output: target_vocab rows)
//
// Without attention (options.attention = std::nullopt) the decoder reads no memory: x_t is the
// embedding alone, h̃_t = h_t and logits_t = W_o h_t — the encoder's final state is then the only
// channel from source to target (the bottleneck attention removes; the same model otherwise).
//
// The bridge. Decoder state tensor k (h, then c for an LSTM) starts from the concatenation, over the
// directions of the encoder's top layer, of that layer's final state tensor k (each column's state
// after its last real step; the reverse direction's after time 0). When the rows differ (e.g. a
// bidirectional encoder's 2·H into a decoder of H) a Dense (`bridge<k>`, linear, with bias) maps
// them; when they agree, they are used as they are. A decoder state tensor the encoder's cell lacks
// (an LSTM decoder after a GRU encoder: c) starts from the decoder cell's own initial state.
//
// Tokens. Sequences of ids are (time, batch) tensors of whole numbers (as Embedding takes them) with a
// (time, batch) 0/1 mask; pad_tokens() builds both from a list of Indices. A target sequence holds the
// tokens and then `eos`, without `bos` (the model feeds `bos` before the first step itself), so
// logits[t] predicts target[t] and loss() is cross_entropy over the real target steps.
//
// Decoding runs under NoGradGuard (nothing is recorded) and in whatever mode the model is in: call
// eval() first so that dropout is off. Both decoders take a padded batch of sources and give, per
// source, the same result as decoding that source alone (the mask makes padded source steps
// invisible), and the attention matrix of the result for plotting.
//
// Scores and length normalisation. A hypothesis y₁…y_n (eos included when emitted) has
// log_prob = Σ log p(y_i | y_<i, x) and, following GNMT (Wu et al. 2016, eq. 14, without the coverage
// term), score = log_prob / lp(n), lp(n) = ((5 + n) / 6)^alpha. alpha = 0 ranks by log_prob alone;
// alpha ≈ 0.6–1 removes beam search's bias toward short outputs. Greedy reports the same two numbers.
//
// Beam search (per source, all sources stepped together as one batch of width·B columns): each step
// extends every live hypothesis by every token, keeps the `beam_width` best candidates by log_prob —
// a candidate ending in eos leaves the beam as finished, the others stay live — and stops when
// `beam_width` hypotheses have finished, none is live, or max_length tokens were emitted (the live
// ones then count as finished without eos). The best finished hypothesis by score is returned (ties:
// the one found first); beam_search_nbest returns them all, best first. With beam_width 1 this is
// greedy decoding, step for step (tested).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "../autograd/ops.hpp"
#include "../core/random.hpp"
#include "attention.hpp"
#include "cell.hpp"
#include "dense.hpp"
#include "dropout.hpp"
#include "embedding.hpp"
#include "module.hpp"
#include "recurrent.hpp"

namespace rwd {

// ---- token batches ----

/// A padded batch of token sequences.
struct TokenBatch {
  Tensor ids;                        ///< (time, batch) whole numbers; `pad` after each sequence's end
  Tensor mask;                       ///< (time, batch): 1 at real tokens, 0 at padding
  std::vector<std::size_t> lengths;  ///< each sequence's length
};

/// Right-pads `sequences` (each at least one token) to the longest: ids and mask of shape (time,
/// batch), sequence b in column b. With `append` ≥ 0 that token (e.g. eos) is added after each
/// sequence first. Throws ValueError for an empty list or an empty sequence, and for a negative id.
TokenBatch pad_tokens(const std::vector<Indices>& sequences, std::int64_t pad = 0, std::int64_t append = -1,
                      Dtype dtype = Dtype::f32);

// ---- the model ----

/// Options of Seq2Seq: `{.hidden_size = 256, .attention = AttentionKind::additive, .dropout = 0.2}`.
struct Seq2SeqOptions {
  std::size_t embedding_size = 0;  ///< target embedding size; 0 = the encoder's input size
  std::size_t hidden_size = 0;     ///< the decoder cell's hidden size; 0 = the encoder's output size
  /// The attention (none: std::nullopt); its memory is the encoder's outputs, its query h_t.
  std::optional<AttentionKind> attention = AttentionKind::general;
  std::size_t attention_size = 0;  ///< additive attention's A; 0 = the decoder's hidden size
  double dropout = 0.0;            ///< on both embeddings and on h̃_t before the output layer, training mode only
  std::int64_t bos = 1;            ///< the token fed before the first target token
  std::int64_t eos = 2;            ///< the token that ends a target sequence
  /// Makes the decoder cell from its input size (the layer argument is 0); empty = an LSTMCell of
  /// hidden_size (with the model's dtype and generator). The cell's output size must be hidden_size.
  CellFactory decoder_cell = {};
  Dtype dtype = Dtype::f32;  ///< dtype of the model's own parameters; the encoder must have it too
};

/// What encode() returns: everything the decoder steps read.
struct Encoded {
  Tensor outputs;          ///< (S, M, B): the encoder's outputs (zeros at padded steps)
  Tensor mask;             ///< (S, B) source mask (undefined = all real)
  AttentionMemory memory;  ///< prepared for the attention (keys computed once); empty without attention
  State initial;           ///< the decoder cell's state before the first step (after the bridge)
  /// Batch columns of the encoded source.
  std::size_t batch() const { return outputs.dim(2); }
};

/// The decoder's carried state between steps.
struct DecoderState {
  State cell;      ///< the decoder cell's state s_t
  Tensor context;  ///< c_t (M, B), fed into the next step; zeros before the first; undefined without attention
};

/// One decoder step.
struct DecoderStep {
  Tensor logits;       ///< (target_vocab, B)
  Tensor weights;      ///< (S, B) attention weights a_t; undefined without attention
  DecoderState state;  ///< the state after this step
};

/// Teacher-forced outputs of a whole target sequence.
struct Seq2SeqOutput {
  Tensor logits;     ///< (T, target_vocab, B): logits[t] predicts target[t]
  Tensor attention;  ///< (T, S, B) attention weights of every step; undefined without attention
};

/// Options of greedy() and beam_search().
struct DecodeOptions {
  std::size_t max_length = 50;  ///< most tokens emitted (eos included), ≥ 1
  std::size_t beam_width = 4;   ///< beam_search only, ≥ 1
  double alpha = 0.0;           ///< GNMT length-normalisation exponent (see the top of this file), ≥ 0
};

/// A decoded sequence.
struct Hypothesis {
  Indices tokens;         ///< the emitted tokens, without bos and without the final eos
  bool ended = false;     ///< whether eos was emitted (false: max_length was reached first)
  double log_prob = 0.0;  ///< Σ log p over the emitted tokens, eos included
  double score = 0.0;     ///< log_prob / ((5 + n)/6)^alpha, n = tokens.size() + ended
  /// (n, source length) attention weights, row i for output step i (eos step included), float64; columns
  /// up to the source's last real step. Undefined without attention.
  Tensor attention;
};

/// An encoder–decoder with optional attention (see the top of this file):
///
///   auto encoder = std::make_shared<Recurrent>(LSTM(32, 128, {}, {.bidirectional = true}));
///   Seq2Seq model(src_vocab, tgt_vocab, encoder, {.hidden_size = 256, .attention = AttentionKind::additive});
///   TokenBatch src = pad_tokens(words), tgt = pad_tokens(phones, 0, model.options().eos);
///   Tensor logits = model(src.ids, src.mask, tgt.ids);                   // (T, tgt_vocab, B)
///   Tensor loss = Seq2Seq::loss(logits, tgt.ids, tgt.mask);
///   model.eval();
///   std::vector<Hypothesis> out = model.beam_search(src.ids, src.mask, {.beam_width = 5, .alpha = 0.6});
///
/// Children (parameter keys): source_embedding, encoder, bridge<k> (only where sizes differ),
/// target_embedding, decoder (the cell), attention (only with attention), combine (only with
/// attention), output, dropout (only with dropout > 0). save/load (nn/serialize.hpp) and
/// `std::cout << model` work as for any Module.
class Seq2Seq : public Module {
 public:
  /// The model around `encoder`, whose input size is the source embedding's size. Throws ValueError for
  /// a vocabulary of 0 (or bos/eos outside the target vocabulary), ShapeError when the decoder cell's
  /// sizes disagree with the options or dot attention is asked with hidden_size ≠ the encoder's output size.
  Seq2Seq(std::size_t source_vocab, std::size_t target_vocab, std::shared_ptr<Recurrent> encoder,
          Seq2SeqOptions options = {}, Generator& gen = default_generator());

  // ---- training: teacher forcing ----
  /// Logits (T, target_vocab, B) of the target (T, B) given the source (S, B) and its mask (undefined =
  /// all real): step t reads target[t−1] (bos at t = 0). Padded target steps give logits that
  /// loss() masks out.
  Tensor forward(const Tensor& source, const Tensor& source_mask, const Tensor& target);
  /// forward(source, source_mask, target).
  Tensor operator()(const Tensor& source, const Tensor& source_mask, const Tensor& target) {
    return forward(source, source_mask, target);
  }
  /// The same with the attention weights of every step.
  Seq2SeqOutput run(const Tensor& source, const Tensor& source_mask, const Tensor& target);
  /// Not a one-input layer: throws ValueError pointing to forward(source, source_mask, target).
  Tensor forward(const Tensor& x) override;
  using Module::operator();

  /// Mean cross-entropy of logits (T, V, B) against target ids (T, B) over the real steps of
  /// target_mask (T, B) (undefined = all): Σ mask·ℓ / Σ mask (cross_entropy with axis 1 and the mask
  /// as weight, nn/losses.hpp). A target id that is not a whole number in [0, V) is a ValueError.
  static Tensor loss(const Tensor& logits, const Tensor& target, const Tensor& target_mask = {});

  // ---- the pieces (what forward and the decoders are made of) ----
  /// Embeds the source (S, B) and runs the encoder and the bridge.
  Encoded encode(const Tensor& source, const Tensor& source_mask = {});
  /// The same from an embedded source (S, E, B), with optional initial states for the encoder (one
  /// State per layer and direction, as Recurrent::run takes them).
  Encoded encode_embedded(const Tensor& embedded, const Tensor& source_mask = {},
                          const std::vector<State>& encoder_initial = {});
  /// The decoder's state before the first step: the bridged state and a zero context.
  DecoderState start(const Encoded& encoded) const;
  /// One decoder step from the previous tokens (B,) (whole numbers, as Embedding takes them).
  DecoderStep step(const Tensor& previous, const DecoderState& state, const Encoded& encoded);
  /// One decoder step from the embedded previous tokens (E, B).
  DecoderStep step_embedded(const Tensor& embedded, const DecoderState& state, const Encoded& encoded);

  // ---- inference (under NoGradGuard; call eval() first) ----
  /// Greedy decoding of each source column: at each step the most probable token (the first on ties).
  std::vector<Hypothesis> greedy(const Tensor& source, const Tensor& source_mask = {}, DecodeOptions options = {});
  /// Beam search of each source column (see the top of this file).
  std::vector<Hypothesis> beam_search(const Tensor& source, const Tensor& source_mask = {},
                                      DecodeOptions options = {});
  /// Every hypothesis the beam search of each source column finished (at most beam_width; those cut at
  /// max_length included), best score first: beam_search returns the first of each.
  std::vector<std::vector<Hypothesis>> beam_search_nbest(const Tensor& source, const Tensor& source_mask = {},
                                                         DecodeOptions options = {});

  /// Each child as name=layer, in the order data flows: `Seq2Seq(source_embedding=Embedding(30 => 32),
  /// encoder=LSTM(32 => 64, bidirectional), bridge0=Dense(128 => 96), …, output=Dense(96 => 40))`.
  std::string repr() const override;
  /// The options, with embedding_size and hidden_size resolved (never 0).
  const Seq2SeqOptions& options() const { return m_options; }
  /// Rows of the source embedding table.
  std::size_t source_vocab() const { return m_source_vocab; }
  /// Rows of the target embedding table and of the logits.
  std::size_t target_vocab() const { return m_target_vocab; }
  /// False for a model built with attention = std::nullopt.
  bool has_attention() const { return m_attention != nullptr; }

  /// The layers, for inspection and initialization.
  Embedding& source_embedding() const { return *m_source_embedding; }
  Embedding& target_embedding() const { return *m_target_embedding; }  ///< (see source_embedding)
  Recurrent& encoder() const { return *m_encoder; }                      ///< (see source_embedding)
  Cell& decoder() const { return *m_decoder; }                           ///< (see source_embedding)
  /// Throws ValueError for a model without attention.
  Attention& attention() const;
  Dense& output() const { return *m_output; }  ///< the layer that maps h̃_t to the logits

 private:
  Tensor drop(const Tensor& x);
  Tensor check_source(const Tensor& source, const Tensor& source_mask, const char* what) const;

  std::size_t m_source_vocab, m_target_vocab;
  Seq2SeqOptions m_options;
  std::shared_ptr<Embedding> m_source_embedding, m_target_embedding;
  std::shared_ptr<Recurrent> m_encoder;
  std::vector<std::shared_ptr<Dense>> m_bridge;  // per decoder state tensor; null where no projection
  std::vector<bool> m_from_encoder;              // per decoder state tensor: bridged from the encoder?
  std::shared_ptr<Cell> m_decoder;
  std::shared_ptr<Attention> m_attention;        // null without attention
  std::shared_ptr<Dense> m_combine;              // null without attention
  std::shared_ptr<Dense> m_output;
  std::shared_ptr<Dropout> m_dropout;            // null without dropout
};

}  // namespace rwd
