#include "seq2seq.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "../autograd/ops.hpp"
#include "../autograd/tape.hpp"
#include "losses.hpp"
#include "lstm_cell.hpp"
#include "sequence.hpp"

namespace rwd {

// ---- token batches ----

TokenBatch pad_tokens(const std::vector<Indices>& sequences, std::int64_t pad, std::int64_t append, Dtype dtype) {
  if (sequences.empty()) throw ValueError("pad_tokens: no sequences (batch 0 is refused)");
  const std::size_t B = sequences.size(), extra = append >= 0 ? 1 : 0;
  if (pad < 0) throw ValueError("pad_tokens: the pad id " + std::to_string(pad) + " is negative");
  TokenBatch out;
  std::size_t T = 0;
  for (std::size_t b = 0; b < B; ++b) {
    if (sequences[b].empty() && !extra) throw ValueError("pad_tokens: sequence " + std::to_string(b) + " is empty");
    for (std::size_t k = 0; k < sequences[b].size(); ++k)
      if (sequences[b][k] < 0)
        throw ValueError("pad_tokens: sequence " + std::to_string(b) + " has the negative id " +
                         std::to_string(sequences[b][k]) + " at position " + std::to_string(k));
    out.lengths.push_back(sequences[b].size() + extra);
    T = std::max(T, out.lengths.back());
  }
  std::vector<double> ids(T * B, static_cast<double>(pad));
  for (std::size_t b = 0; b < B; ++b) {
    for (std::size_t t = 0; t < sequences[b].size(); ++t) ids[t * B + b] = static_cast<double>(sequences[b][t]);
    if (extra) ids[sequences[b].size() * B + b] = static_cast<double>(append);
  }
  out.ids = Tensor::from_vector(ids, {T, B}, dtype);
  out.mask = mask_from_lengths(out.lengths, T, dtype);
  return out;
}

// ---- construction ----

Seq2Seq::Seq2Seq(std::size_t source_vocab, std::size_t target_vocab, std::shared_ptr<Recurrent> encoder,
                 Seq2SeqOptions options, Generator& gen)
    : m_source_vocab(source_vocab), m_target_vocab(target_vocab), m_options(std::move(options)) {
  check_size("Seq2Seq", "source_vocab", source_vocab);
  check_size("Seq2Seq", "target_vocab", target_vocab);
  if (!encoder) throw ValueError("Seq2Seq: no encoder (a null Recurrent)");
  const auto in_vocab = [&](std::int64_t id) { return id >= 0 && static_cast<std::size_t>(id) < target_vocab; };
  if (!in_vocab(m_options.bos) || !in_vocab(m_options.eos))
    throw ValueError("Seq2Seq: bos " + std::to_string(m_options.bos) + " and eos " + std::to_string(m_options.eos) +
                     " must be ids of the target vocabulary [0, " + std::to_string(target_vocab) + ")");
  if (!(m_options.dropout >= 0.0 && m_options.dropout < 1.0))
    throw ValueError("Seq2Seq: dropout must be in [0, 1), got " + format_value(m_options.dropout));
  const Dtype dtype = m_options.dtype;
  Dtype encoder_dtype;
  if (encoder->parameter_dtype(encoder_dtype) && encoder_dtype != dtype)
    throw DtypeError("Seq2Seq: the encoder " + encoder->repr() + " is " + dtype_name(encoder_dtype) +
                     " but the options ask for " + dtype_name(dtype) + " — build both in one dtype");

  const std::size_t E_src = encoder->input_size(), M = encoder->output_size();
  const std::size_t E = m_options.embedding_size ? m_options.embedding_size : E_src;
  const std::size_t H = m_options.hidden_size ? m_options.hidden_size : M;
  m_options.embedding_size = E;
  m_options.hidden_size = H;
  if (m_options.attention == AttentionKind::dot && H != M)
    throw ShapeError("Seq2Seq: dot attention needs the decoder's hidden size (" + std::to_string(H) +
                     ") to equal the encoder's output size (" + std::to_string(M) + "); use general or additive attention");

  m_source_embedding = register_module("source_embedding", std::make_shared<Embedding>(source_vocab, E_src, dtype, gen));
  m_encoder = register_module("encoder", std::move(encoder));

  // The decoder cell first (its state shapes decide the bridge), registered after the bridge so the
  // keys read in the order data flows.
  const std::size_t decoder_input = E + (m_options.attention ? M : 0);
  std::shared_ptr<Cell> cell = m_options.decoder_cell
                                   ? m_options.decoder_cell(decoder_input, 0)
                                   : std::make_shared<LSTMCell>(decoder_input, H, LSTMOptions{.dtype = dtype}, gen);
  if (!cell) throw ValueError("Seq2Seq: the decoder_cell factory returned no cell");
  if (cell->input_size() != decoder_input || cell->output_size() != H)
    throw ShapeError("Seq2Seq: the decoder cell " + cell->repr() + " takes " + std::to_string(cell->input_size()) +
                     " features and outputs " + std::to_string(cell->output_size()) + "; the model feeds it " +
                     std::to_string(decoder_input) + " (target embedding " + std::to_string(E) +
                     (m_options.attention ? " + context " + std::to_string(M) : std::string()) + ") and needs " +
                     std::to_string(H) + " (hidden_size)");

  // Bridge: decoder state tensor k from the encoder's top layer's state tensor k, both directions
  // concatenated; a Dense only where the rows differ.
  const std::size_t dirs = m_encoder->directions();
  const std::vector<Shape> encoder_shapes = m_encoder->cell(m_encoder->num_layers() - 1).state_shapes(1);
  const std::vector<Shape> decoder_shapes = cell->state_shapes(1);
  for (std::size_t k = 0; k < decoder_shapes.size(); ++k) {
    const bool from_encoder = k < encoder_shapes.size();
    m_from_encoder.push_back(from_encoder);
    std::shared_ptr<Dense> bridge;
    if (from_encoder) {
      const std::size_t rows = encoder_shapes[k][0] * dirs, want = decoder_shapes[k][0];
      if (rows != want)
        bridge = register_module("bridge" + std::to_string(k), std::make_shared<Dense>(rows, want, Activation(), true, dtype, gen));
    }
    m_bridge.push_back(bridge);
  }

  m_target_embedding = register_module("target_embedding", std::make_shared<Embedding>(target_vocab, E, dtype, gen));
  m_decoder = register_module("decoder", std::move(cell));
  if (m_options.attention) {
    const AttentionOptions ao{.attention_size = m_options.attention_size ? m_options.attention_size : H, .dtype = dtype};
    m_attention = register_module("attention", std::make_shared<Attention>(*m_options.attention, H, M, ao, gen));
    // h̃_t = tanh(W_c [h_t ; c_t] + b_c)
    m_combine = register_module("combine", std::make_shared<Dense>(H + M, H, "tanh", true, dtype, gen));
  }
  m_output = register_module("output", std::make_shared<Dense>(H, target_vocab, Activation(), true, dtype, gen));
  // Seeded from `gen` whether or not it is used, so the dropout rate does not shift later draws.
  const std::uint32_t seed = gen.next_u32();
  if (m_options.dropout > 0.0) m_dropout = register_module("dropout", std::make_shared<Dropout>(m_options.dropout, seed));
}

Attention& Seq2Seq::attention() const {
  if (!m_attention) throw ValueError(repr() + ": this model has no attention");
  return *m_attention;
}

std::string Seq2Seq::repr() const {
  std::string s = "Seq2Seq(";
  const auto& children = named_children();
  for (std::size_t i = 0; i < children.size(); ++i)
    s += (i ? ", " : "") + children[i].first + "=" + children[i].second->repr();
  return s + ")";
}

Tensor Seq2Seq::drop(const Tensor& x) { return m_dropout ? m_dropout->forward(x) : x; }

Tensor Seq2Seq::forward(const Tensor&) {
  throw ValueError(repr() + ": a Seq2Seq needs a source and a target: call forward(source, source_mask, target) "
                   "(teacher forcing) or greedy/beam_search(source, source_mask)");
}

// ---- checks ----

Tensor Seq2Seq::check_source(const Tensor& source, const Tensor& source_mask, const char* what) const {
  const Shape s = source.shape();
  if (s.ndim() != 2)
    throw ShapeError("Seq2Seq::" + std::string(what) + ": source " + s.str() +
                     ": expected (time, batch) token ids (pad_tokens builds them)");
  if (s[0] == 0) throw ValueError("Seq2Seq::" + std::string(what) + ": source " + s.str() + " has zero time steps");
  refuse_batch_0(s, "source");
  if (source_mask.defined() && source_mask.shape() != s)
    throw ShapeError("Seq2Seq::" + std::string(what) + ": source mask " + source_mask.shape().str() +
                     " does not match the source " + s.str() + ": expected (time, batch), 1 at real tokens");
  return source;
}

// ---- the pieces ----

Encoded Seq2Seq::encode(const Tensor& source, const Tensor& source_mask) {
  check_source(source, source_mask, "encode");
  return encode_embedded(drop(m_source_embedding->forward(source)), source_mask);
}

Encoded Seq2Seq::encode_embedded(const Tensor& embedded, const Tensor& source_mask,
                                 const std::vector<State>& encoder_initial) {
  const Shape s = embedded.shape();
  if (s.ndim() != 3 || s[1] != m_encoder->input_size())
    throw ShapeError("Seq2Seq::encode_embedded: embedded source " + s.str() + ": expected (time, " +
                     std::to_string(m_encoder->input_size()) + ", batch)");
  RecurrentRun run = m_encoder->run(split_steps(embedded), source_mask, encoder_initial);
  Encoded out;
  out.outputs = stack_steps(run.outputs);
  const std::size_t B = s[2];
  if (source_mask.defined()) out.mask = source_mask.dtype() == embedded.dtype() ? source_mask : source_mask.to(embedded.dtype());
  // The top layer's final states, forward direction then reverse.
  const std::size_t dirs = m_encoder->directions(), top = (m_encoder->num_layers() - 1) * dirs;
  const State own = m_decoder->initial_state(B);
  for (std::size_t k = 0; k < m_bridge.size(); ++k) {
    if (!m_from_encoder[k]) {
      out.initial.push_back(own[k]);
      continue;
    }
    Tensor x = dirs == 2 ? concat({run.final_states[top][k], run.final_states[top + 1][k]}, 0) : run.final_states[top][k];
    out.initial.push_back(m_bridge[k] ? m_bridge[k]->forward(x) : x);
  }
  if (m_attention) out.memory = m_attention->prepare(out.outputs, out.mask);
  return out;
}

DecoderState Seq2Seq::start(const Encoded& encoded) const {
  DecoderState state{encoded.initial, Tensor()};
  if (m_attention) state.context = Tensor::zeros({m_encoder->output_size(), encoded.batch()}, encoded.outputs.dtype());
  return state;
}

DecoderStep Seq2Seq::step(const Tensor& previous, const DecoderState& state, const Encoded& encoded) {
  if (previous.ndim() != 1)
    throw ShapeError("Seq2Seq::step: previous tokens " + previous.shape().str() + ": expected (batch,)");
  return step_embedded(drop(m_target_embedding->forward(previous)), state, encoded);
}

DecoderStep Seq2Seq::step_embedded(const Tensor& embedded, const DecoderState& state, const Encoded& encoded) {
  const Shape s = embedded.shape();
  if (s.ndim() != 2 || s[0] != m_options.embedding_size || s[1] != encoded.batch())
    throw ShapeError("Seq2Seq::step: embedded tokens " + s.str() + ": expected (" + std::to_string(m_options.embedding_size) +
                     ", " + std::to_string(encoded.batch()) + ") — (embedding, batch) of the encoded batch");
  DecoderStep out;
  // x_t = [emb(y_{t−1}) ; c_{t−1}]  (input feeding), or the embedding alone without attention
  const Tensor x = m_attention ? concat({embedded, state.context}, 0) : embedded;
  auto [h, cell_state] = m_decoder->step(x, state.cell);
  out.state.cell = std::move(cell_state);
  Tensor attentional = h;
  if (m_attention) {
    AttentionOutput a = m_attention->attend(h, encoded.memory);
    attentional = m_combine->forward(concat({h, a.context}, 0));  // h̃_t = tanh(W_c [h_t ; c_t] + b_c)
    out.weights = a.weights;
    out.state.context = a.context;
  }
  out.logits = m_output->forward(drop(attentional));
  return out;
}

// ---- teacher forcing ----

Seq2SeqOutput Seq2Seq::run(const Tensor& source, const Tensor& source_mask, const Tensor& target) {
  check_source(source, source_mask, "forward");
  const Shape ts = target.shape();
  if (ts.ndim() != 2 || ts[1] != source.dim(1))
    throw ShapeError("Seq2Seq::forward: target " + ts.str() + " does not fit the source " + source.shape().str() +
                     ": expected (time, " + std::to_string(source.dim(1)) + ") token ids");
  if (ts[0] == 0) throw ValueError("Seq2Seq::forward: target " + ts.str() + " has zero time steps");
  const std::size_t T = ts[0], B = ts[1];
  Encoded encoded = encode(source, source_mask);
  // The decoder reads [bos, y₀, …, y_{T−2}]: the target shifted right by one.
  const Tensor bos = Tensor::full({1, B}, static_cast<double>(m_options.bos), target.dtype());
  const Tensor inputs = T == 1 ? bos : concat({bos, slice(target, 0, 0, T - 1)}, 0);
  const std::vector<Tensor> steps = split_steps(drop(m_target_embedding->forward(inputs)));
  DecoderState state = start(encoded);
  std::vector<Tensor> logits, weights;
  for (std::size_t t = 0; t < T; ++t) {
    DecoderStep out = step_embedded(steps[t], state, encoded);
    logits.push_back(out.logits);
    if (m_attention) weights.push_back(out.weights);
    state = std::move(out.state);
  }
  Seq2SeqOutput out;
  out.logits = stack(logits, 0);
  if (m_attention) out.attention = stack(weights, 0);
  return out;
}

Tensor Seq2Seq::forward(const Tensor& source, const Tensor& source_mask, const Tensor& target) {
  return run(source, source_mask, target).logits;
}

Tensor Seq2Seq::loss(const Tensor& logits, const Tensor& target, const Tensor& target_mask) {
  if (!logits.defined() || !target.defined())
    throw TapeError(std::string("Seq2Seq::loss: the ") + (logits.defined() ? "target" : "logits") + " is an undefined tensor");
  const Shape ls = logits.shape(), ts = target.shape();
  if (ls.ndim() != 3 || ts != Shape{ls[0], ls[2]})
    throw ShapeError("Seq2Seq::loss: logits " + ls.str() + " and target " + ts.str() +
                     ": expected logits (time, vocab, batch) and target (time, batch)");
  if (target_mask.defined() && target_mask.shape() != ts)
    throw ShapeError("Seq2Seq::loss: target mask " + target_mask.shape().str() + " does not match the target " + ts.str());
  const std::vector<double> v = target.to_vector();
  Indices labels(v.size());
  const std::size_t vocab = ls[1];
  for (std::size_t k = 0; k < v.size(); ++k) {
    // Checked as a double against the vocabulary before the cast: casting ∞ or anything beyond int64's
    // range to an integer is undefined (it gave the label -9223372036854775808).
    if (!(v[k] >= 0 && v[k] < static_cast<double>(vocab) && v[k] == std::floor(v[k])))
      throw ValueError("Seq2Seq::loss: target id " + format_value(v[k]) + " at (t, b) = (" + std::to_string(k / ts[1]) +
                       ", " + std::to_string(k % ts[1]) + ") is not a whole number in [0, " + std::to_string(vocab) +
                       ") — the vocabulary of logits " + ls.str());
    labels[k] = static_cast<std::int64_t>(v[k]);
  }
  ClassLossOptions options{.reduction = Reduction::mean, .axis = 1};
  if (target_mask.defined()) options.weight = target_mask.dtype() == logits.dtype() ? target_mask : target_mask.to(logits.dtype());
  return cross_entropy(logits, labels, options);
}

// ---- decoding ----

namespace {

// GNMT's length penalty lp(n) = ((5 + n) / 6)^alpha.
double length_penalty(std::size_t n, double alpha) { return std::pow((5.0 + static_cast<double>(n)) / 6.0, alpha); }

// Per column: one past its last real source step (the attention matrix's width).
std::vector<std::size_t> source_lengths(const Tensor& mask, std::size_t S, std::size_t B) {
  std::vector<std::size_t> len(B, S);
  if (!mask.defined()) return len;
  const std::vector<double> m = mask.to_vector();
  for (std::size_t b = 0; b < B; ++b) {
    len[b] = 0;
    for (std::size_t t = 0; t < S; ++t)
      if (m[t * B + b] != 0) len[b] = t + 1;
  }
  return len;
}

// A hypothesis being built: its tokens, log-probability and attention rows.
struct Partial {
  Indices tokens;
  bool ended = false;
  double log_prob = 0.0;
  std::vector<double> attention;  // rows of the source's length, row-major
  std::size_t rows = 0;
};

Hypothesis finish(const Partial& p, std::size_t source_length, bool with_attention, double alpha) {
  Hypothesis h;
  h.tokens = p.tokens;
  h.ended = p.ended;
  h.log_prob = p.log_prob;
  h.score = p.log_prob / length_penalty(p.tokens.size() + (p.ended ? 1 : 0), alpha);
  if (with_attention) h.attention = Tensor::from_vector(p.attention, {p.rows, source_length}, Dtype::f64);
  return h;
}

void check_decode(const DecodeOptions& o, const char* who) {
  if (o.max_length == 0) throw ValueError(std::string("Seq2Seq::") + who + ": max_length must be at least 1, got 0");
  if (o.beam_width == 0) throw ValueError(std::string("Seq2Seq::") + who + ": beam_width must be at least 1, got 0");
  if (!(o.alpha >= 0.0 && std::isfinite(o.alpha)))
    throw ValueError(std::string("Seq2Seq::") + who + ": alpha must be a finite number ≥ 0, got " + format_value(o.alpha));
}

}  // namespace

std::vector<Hypothesis> Seq2Seq::greedy(const Tensor& source, const Tensor& source_mask, DecodeOptions options) {
  check_decode(options, "greedy");
  check_source(source, source_mask, "greedy");
  NoGradGuard no_grad;
  const std::size_t S = source.dim(0), B = source.dim(1), V = m_target_vocab;
  const Encoded encoded = encode(source, source_mask);
  const std::vector<std::size_t> len = source_lengths(encoded.mask, S, B);
  std::vector<Partial> partial(B);
  std::vector<bool> done(B, false);
  Indices previous(B, m_options.bos);
  DecoderState state = start(encoded);
  for (std::size_t t = 0; t < options.max_length; ++t) {
    DecoderStep out = step_embedded(drop(m_target_embedding->forward(previous)), state, encoded);
    const std::vector<double> lp = log_softmax(out.logits, 0).to_vector();  // (V, B)
    const std::vector<double> w = m_attention ? out.weights.to_vector() : std::vector<double>();
    bool all_done = true;
    for (std::size_t b = 0; b < B; ++b) {
      if (done[b]) continue;
      std::size_t best = 0;  // the first largest: ties go to the smaller id
      for (std::size_t v = 1; v < V; ++v)
        if (lp[v * B + b] > lp[best * B + b]) best = v;
      Partial& p = partial[b];
      p.log_prob += lp[best * B + b];
      if (m_attention) {
        for (std::size_t s = 0; s < len[b]; ++s) p.attention.push_back(w[s * B + b]);
        ++p.rows;
      }
      previous[b] = static_cast<std::int64_t>(best);
      if (previous[b] == m_options.eos) {
        p.ended = done[b] = true;
      } else {
        p.tokens.push_back(previous[b]);
        all_done = false;
      }
    }
    state = std::move(out.state);
    if (all_done) break;
  }
  std::vector<Hypothesis> result;
  for (std::size_t b = 0; b < B; ++b) result.push_back(finish(partial[b], len[b], m_attention != nullptr, options.alpha));
  return result;
}

std::vector<Hypothesis> Seq2Seq::beam_search(const Tensor& source, const Tensor& source_mask, DecodeOptions options) {
  std::vector<Hypothesis> best;
  for (std::vector<Hypothesis>& n : beam_search_nbest(source, source_mask, options)) best.push_back(std::move(n.front()));
  return best;
}

std::vector<std::vector<Hypothesis>> Seq2Seq::beam_search_nbest(const Tensor& source, const Tensor& source_mask,
                                                              DecodeOptions options) {
  check_decode(options, "beam_search");
  check_source(source, source_mask, "beam_search");
  NoGradGuard no_grad;
  const std::size_t S = source.dim(0), B = source.dim(1), V = m_target_vocab, W = options.beam_width, N = B * W;
  const Encoded once = encode(source, source_mask);
  const std::vector<std::size_t> len = source_lengths(once.mask, S, B);

  // Every source gets W columns (slots): column b·W + j holds source b's j-th live hypothesis. The
  // memory is repeated once here; a step then only reorders the (small) decoder state.
  Indices repeat(N);
  for (std::size_t c = 0; c < N; ++c) repeat[c] = static_cast<std::int64_t>(c / W);
  Encoded encoded;
  encoded.outputs = index_select(once.outputs, 2, repeat);
  if (once.mask.defined()) encoded.mask = index_select(once.mask, 1, repeat);
  if (m_attention) encoded.memory = once.memory.select(repeat);
  DecoderState state = start(once);
  for (Tensor& s : state.cell) s = index_select(s, 1, repeat);
  if (state.context.defined()) state.context = index_select(state.context, 1, repeat);
  encoded.initial = state.cell;

  std::vector<std::vector<Partial>> live(B), finished(B);
  for (std::size_t b = 0; b < B; ++b) live[b].push_back(Partial{});
  std::vector<bool> done(B, false);

  struct Candidate {
    double log_prob;
    std::size_t slot, token;
  };
  for (std::size_t t = 0; t < options.max_length; ++t) {
    Indices previous(N, m_options.bos);
    for (std::size_t b = 0; b < B; ++b)
      for (std::size_t j = 0; j < live[b].size(); ++j)
        if (!live[b][j].tokens.empty()) previous[b * W + j] = live[b][j].tokens.back();
    DecoderStep out = step_embedded(drop(m_target_embedding->forward(previous)), state, encoded);
    const std::vector<double> lp = log_softmax(out.logits, 0).to_vector();  // (V, N)
    const std::vector<double> w = m_attention ? out.weights.to_vector() : std::vector<double>();

    Indices parent(N);
    for (std::size_t c = 0; c < N; ++c) parent[c] = static_cast<std::int64_t>(c - c % W);  // empty slots: any column of b
    for (std::size_t b = 0; b < B; ++b) {
      if (done[b]) continue;
      std::vector<Candidate> candidates;
      candidates.reserve(live[b].size() * V);
      for (std::size_t j = 0; j < live[b].size(); ++j)
        for (std::size_t v = 0; v < V; ++v) candidates.push_back({live[b][j].log_prob + lp[v * N + b * W + j], j, v});
      // Best first; ties to the earlier slot, then the smaller id (greedy's rule, for beam width 1).
      const std::size_t keep = std::min(candidates.size(), 2 * W);
      std::partial_sort(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(keep), candidates.end(),
                        [](const Candidate& x, const Candidate& y) {
                          if (x.log_prob != y.log_prob) return x.log_prob > y.log_prob;
                          return x.slot != y.slot ? x.slot < y.slot : x.token < y.token;
                        });
      // At most W of the best 2W are eos, so the first 2W always refill the beam (or finish it).
      std::vector<Partial> next;
      for (std::size_t k = 0; k < keep && next.size() < W && finished[b].size() < W; ++k) {
        const Candidate& c = candidates[k];
        Partial p = live[b][c.slot];
        p.log_prob = c.log_prob;
        if (m_attention) {
          const std::size_t col = b * W + c.slot;
          for (std::size_t s = 0; s < len[b]; ++s) p.attention.push_back(w[s * N + col]);
          ++p.rows;
        }
        if (static_cast<std::int64_t>(c.token) == m_options.eos) {
          p.ended = true;
          finished[b].push_back(std::move(p));
        } else {
          p.tokens.push_back(static_cast<std::int64_t>(c.token));
          parent[b * W + next.size()] = static_cast<std::int64_t>(b * W + c.slot);
          next.push_back(std::move(p));
        }
      }
      live[b] = std::move(next);
      if (finished[b].size() >= W) live[b].clear();  // finished: what is still live is not a result
      if (live[b].empty()) done[b] = true;
    }
    if (std::all_of(done.begin(), done.end(), [](bool d) { return d; })) break;
    // Each slot continues from its parent's state.
    state = std::move(out.state);
    for (Tensor& s : state.cell) s = index_select(s, 1, parent);
    if (state.context.defined()) state.context = index_select(state.context, 1, parent);
  }

  std::vector<std::vector<Hypothesis>> result(B);
  for (std::size_t b = 0; b < B; ++b) {
    // Hypotheses still live at max_length (never for a source that finished) count as finished without eos.
    for (Partial& p : live[b]) finished[b].push_back(std::move(p));
    for (const Partial& p : finished[b]) result[b].push_back(finish(p, len[b], m_attention != nullptr, options.alpha));
    // Best score first; equal scores keep the order they were found in.
    std::stable_sort(result[b].begin(), result[b].end(),
                     [](const Hypothesis& x, const Hypothesis& y) { return x.score > y.score; });
    if (result[b].size() > W) result[b].resize(W);  // the W best (at max_length up to 2W − 1 were left)
  }
  return result;
}

}  // namespace rwd
