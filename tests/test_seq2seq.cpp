// The encoder–decoder (nn/seq2seq.hpp): gradients by finite differences through a whole encoder and
// decoder step sequence, padded batches against each sequence alone, beam search against greedy and
// against an exhaustive search, a model that learns to reverse sequences, save/load and the errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <rewind.hpp>

using namespace rwd;

namespace {

constexpr std::int64_t kBos = 1, kEos = 2;

void randomize(Module& m, Generator& gen, double a = 0.8) {
  for (auto& [k, p] : m.named_parameters()) p.assign(Tensor::uniform(p.shape(), -a, a, gen, p.dtype()));
}

// A small float64 model: source vocabulary 5, target vocabulary 6, a bidirectional LSTM encoder of 2
// units per direction (so 4 rows of state) and a decoder of 3 units: the bridge projects 4 → 3.
Seq2Seq small_model(std::optional<AttentionKind> attention, Generator& gen, std::size_t hidden = 3) {
  auto encoder = std::make_shared<Recurrent>(
      LSTM(3, 2, LSTMOptions{.dtype = float64}, RecurrentOptions{.bidirectional = true}, gen));
  Seq2Seq model(5, 6, encoder,
                {.embedding_size = 3, .hidden_size = hidden, .attention = attention, .attention_size = 3,
                 .bos = kBos, .eos = kEos, .dtype = float64},
                gen);
  randomize(model, gen);
  return model;
}

std::string name(std::optional<AttentionKind> kind) { return kind ? to_string(*kind) : std::string("none"); }

// Source ids (3, 2): lengths 3 and 2; target ids (3, 2): lengths 3 and 1.
struct Data {
  TokenBatch source, target;
};
Data small_data() {
  return {pad_tokens({{0, 3, 4}, {2, 1}}, 0, -1, float64), pad_tokens({{3, 5}, {}}, 0, kEos, float64)};
}

std::vector<double> column(const Tensor& t, std::size_t b) {  // the b-th batch column of a (…, B) tensor
  const std::vector<double> v = t.to_vector();
  const std::size_t B = t.dim(-1);
  std::vector<double> out;
  for (std::size_t k = b; k < v.size(); k += B) out.push_back(v[k]);
  return out;
}

// log p(tokens [+ eos] | source) by teacher forcing: the reference for the decoders' scores.
double sequence_log_prob(Seq2Seq& model, const Tensor& source, const Indices& tokens, bool ended) {
  Indices target = tokens;
  if (ended) target.push_back(kEos);
  const TokenBatch t = pad_tokens({target}, 0, -1, source.dtype());
  const Tensor logp = log_softmax(model(source, Tensor(), t.ids), 1);  // (T, V, 1)
  double total = 0;
  for (std::size_t i = 0; i < target.size(); ++i) total += logp.at({i, static_cast<std::size_t>(target[i]), 0});
  return total;
}

}  // namespace

TEST_CASE("Seq2Seq: gradients by finite differences through the encoder and decoder steps with masks") {
  // With respect to every weight (embeddings, encoder, bridge, decoder cell, attention, output), the
  // embedded source and the encoder's initial states, source and target masks included.
  for (std::optional<AttentionKind> kind :
       {std::optional<AttentionKind>(AttentionKind::additive), std::optional<AttentionKind>(AttentionKind::general),
        std::optional<AttentionKind>(), std::optional<AttentionKind>(AttentionKind::dot)}) {
    CAPTURE(name(kind));
    Generator gen(21);
    // dot attention needs hidden = the encoder's 4 output rows (no bridge then).
    Seq2Seq model = small_model(kind, gen, kind == AttentionKind::dot ? 4 : 3);
    const Data d = small_data();
    std::vector<State> initial;
    for (int k = 0; k < 2; ++k)
      initial.push_back({Tensor::uniform({2, 2}, -0.5, 0.5, gen, float64).set_requires_grad().set_name("h0_" + std::to_string(k)),
                         Tensor::uniform({2, 2}, -0.5, 0.5, gen, float64).set_requires_grad().set_name("c0_" + std::to_string(k))});
    std::vector<Tensor> inputs;
    for (auto& [k, p] : model.named_parameters()) inputs.push_back(p.set_name(k));
    for (const State& s : initial) inputs.insert(inputs.end(), s.begin(), s.end());
    // The decoder reads [bos, y₀, y₁] step by step.
    const std::vector<Tensor> previous = {Tensor::from_vector(std::vector<double>{1, 1}, {2}, float64),
                                          Tensor::from_vector(std::vector<double>{3, 2}, {2}, float64),
                                          Tensor::from_vector(std::vector<double>{5, 0}, {2}, float64)};
    auto unroll = [&](bool loss) {
      const Encoded enc = model.encode_embedded(model.source_embedding()(d.source.ids), d.source.mask, initial);
      DecoderState state = model.start(enc);
      std::vector<Tensor> logits, weights;
      for (const Tensor& p : previous) {
        DecoderStep s = model.step(p, state, enc);
        logits.push_back(s.logits);
        if (s.weights.defined()) weights.push_back(reshape(s.weights, {s.weights.numel()}));
        state = s.state;
      }
      if (loss) return Seq2Seq::loss(stack(logits, 0), d.target.ids, d.target.mask);
      weights.push_back(reshape(stack(logits, 0), {3 * 6 * 2}));
      return concat(weights, 0);
    };
    const GradcheckReport masked_loss = gradcheck([&](const std::vector<Tensor>&) { return unroll(true); }, inputs);
    CHECK_MESSAGE(masked_loss.ok(), masked_loss.str());
    const GradcheckReport outputs = gradcheck([&](const std::vector<Tensor>&) { return unroll(false); }, inputs);
    CHECK_MESSAGE(outputs.ok(), outputs.str());
  }
}

TEST_CASE("Seq2Seq: teacher forcing is the step sequence fed bos then the target") {
  Generator gen(23);
  Seq2Seq model = small_model(AttentionKind::general, gen);
  const Data d = small_data();
  const Seq2SeqOutput out = model.run(d.source.ids, d.source.mask, d.target.ids);
  REQUIRE(out.logits.shape() == Shape{3, 6, 2});
  REQUIRE(out.attention.shape() == Shape{3, 3, 2});
  const Encoded enc = model.encode(d.source.ids, d.source.mask);
  DecoderState state = model.start(enc);
  const std::vector<std::vector<double>> previous = {{1, 1}, {3, 2}, {5, 0}};
  for (std::size_t t = 0; t < 3; ++t) {
    DecoderStep s = model.step(Tensor::from_vector(previous[t], {2}, float64), state, enc);
    const std::vector<double> a = slice(out.logits, 0, t, t + 1).to_vector(), b = s.logits.to_vector();
    for (std::size_t k = 0; k < a.size(); ++k) CHECK(a[k] == doctest::Approx(b[k]).epsilon(1e-13));
    state = s.state;
  }
  // The masked loss: the mean of −log p over the 4 real target tokens (3 + 1), by hand.
  const Tensor logp = log_softmax(out.logits, 1);
  const double by_hand = -(logp.at({0, 3, 0}) + logp.at({1, 5, 0}) + logp.at({2, 2, 0}) + logp.at({0, 2, 1})) / 4;
  CHECK(Seq2Seq::loss(out.logits, d.target.ids, d.target.mask).item() == doctest::Approx(by_hand).epsilon(1e-13));
}

TEST_CASE("Seq2Seq: a padded batch gives each sequence's teacher-forced logits and attention as alone") {
  for (std::optional<AttentionKind> kind :
       {std::optional<AttentionKind>(AttentionKind::additive), std::optional<AttentionKind>()}) {
    CAPTURE(name(kind));
    Generator gen(25);
    Seq2Seq model = small_model(kind, gen);
    const std::vector<Indices> sources = {{3, 4}, {0, 3, 4, 4}, {1}}, targets = {{3, 5, 5}, {4}, {0, 1}};
    const TokenBatch src = pad_tokens(sources, 0, -1, float64), tgt = pad_tokens(targets, 0, kEos, float64);
    const Seq2SeqOutput batch = model.run(src.ids, src.mask, tgt.ids);
    for (std::size_t b = 0; b < sources.size(); ++b) {
      CAPTURE(b);
      const TokenBatch s1 = pad_tokens({sources[b]}, 0, -1, float64), t1 = pad_tokens({targets[b]}, 0, kEos, float64);
      const Seq2SeqOutput alone = model.run(s1.ids, Tensor(), t1.ids);
      const std::size_t T = t1.lengths[0], S = s1.lengths[0], V = 6;
      const std::vector<double> lb = column(batch.logits, b), la = alone.logits.to_vector();
      for (std::size_t k = 0; k < T * V; ++k) CHECK(lb[k] == doctest::Approx(la[k]).epsilon(1e-12));
      if (kind) {
        const std::vector<double> ab = column(batch.attention, b), aa = alone.attention.to_vector();
        const std::size_t Smax = src.ids.dim(0);
        for (std::size_t t = 0; t < T; ++t)
          for (std::size_t s = 0; s < Smax; ++s) {
            if (s < S) CHECK(ab[t * Smax + s] == doctest::Approx(aa[t * S + s]).epsilon(1e-12));
            else CHECK(ab[t * Smax + s] == 0.0);
          }
      }
    }
  }
}

TEST_CASE("Seq2Seq: a padded batch decodes each sequence as alone (greedy and beam search)") {
  for (std::optional<AttentionKind> kind :
       {std::optional<AttentionKind>(AttentionKind::general), std::optional<AttentionKind>()}) {
    CAPTURE(name(kind));
    Generator gen(27);
    Seq2Seq model = small_model(kind, gen);
    randomize(model, gen, 2.0);  // sharper distributions: some sequences end before max_length
    const std::vector<Indices> sources = {{3, 4}, {0, 3, 4, 4}, {1}, {4, 4, 0}};
    const TokenBatch src = pad_tokens(sources, 0, -1, float64);
    for (std::size_t width : {1, 3}) {
      CAPTURE(width);
      const DecodeOptions options{.max_length = 6, .beam_width = width, .alpha = 0.6};
      const std::vector<Hypothesis> greedy = model.greedy(src.ids, src.mask, options);
      const std::vector<Hypothesis> beam = model.beam_search(src.ids, src.mask, options);
      REQUIRE(greedy.size() == sources.size());
      REQUIRE(beam.size() == sources.size());
      for (std::size_t b = 0; b < sources.size(); ++b) {
        CAPTURE(b);
        const TokenBatch one = pad_tokens({sources[b]}, 0, -1, float64);
        for (bool use_beam : {false, true}) {
          const Hypothesis& h = use_beam ? beam[b] : greedy[b];
          const Hypothesis a = use_beam ? model.beam_search(one.ids, Tensor(), options)[0] : model.greedy(one.ids, Tensor(), options)[0];
          CHECK(h.tokens == a.tokens);
          CHECK(h.ended == a.ended);
          CHECK(h.log_prob == doctest::Approx(a.log_prob).epsilon(1e-12));
          CHECK(h.score == doctest::Approx(a.score).epsilon(1e-12));
          if (kind) {
            REQUIRE(h.attention.shape() == a.attention.shape());
            CHECK(h.attention.dim(1) == sources[b].size());
            const std::vector<double> x = h.attention.to_vector(), y = a.attention.to_vector();
            for (std::size_t k = 0; k < x.size(); ++k) CHECK(x[k] == doctest::Approx(y[k]).epsilon(1e-12));
          } else {
            CHECK(!h.attention.defined());
          }
        }
      }
    }
  }
}

TEST_CASE("Seq2Seq: beam search of width 1 equals greedy decoding (tokens and scores)") {
  for (std::optional<AttentionKind> kind :
       {std::optional<AttentionKind>(AttentionKind::additive), std::optional<AttentionKind>(AttentionKind::general),
        std::optional<AttentionKind>()}) {
    CAPTURE(name(kind));
    Generator gen(29);
    Seq2Seq model = small_model(kind, gen);
    randomize(model, gen, 2.0);
    const TokenBatch src = pad_tokens({{3, 4}, {0, 3, 4, 4}, {1}, {4, 4, 0}, {2, 2}}, 0, -1, float64);
    // eos made likelier step by step (its output bias raised) until some sequences end and others
    // run to max_length, so the comparison covers both.
    bool mixed = false;
    for (int lift = 0; lift < 60 && !mixed; ++lift) {
      if (lift) model.output().bias.data<double>()[kEos] += 0.1;
      for (double alpha : {0.0, 0.8}) {
        const DecodeOptions options{.max_length = 7, .beam_width = 1, .alpha = alpha};
        const std::vector<Hypothesis> greedy = model.greedy(src.ids, src.mask, options);
        const std::vector<Hypothesis> beam = model.beam_search(src.ids, src.mask, options);
        std::size_t ended = 0;
        for (std::size_t b = 0; b < greedy.size(); ++b) {
          CAPTURE(b);
          CHECK(beam[b].tokens == greedy[b].tokens);
          CHECK(beam[b].ended == greedy[b].ended);
          CHECK(beam[b].log_prob == greedy[b].log_prob);  // the same arithmetic, so exactly
          CHECK(beam[b].score == greedy[b].score);
          if (kind) CHECK(beam[b].attention.to_vector() == greedy[b].attention.to_vector());
          ended += greedy[b].ended;
        }
        mixed |= ended > 0 && ended < greedy.size();
      }
    }
    CHECK(mixed);
  }
}

TEST_CASE("Seq2Seq: decoders' scores are GNMT-normalised teacher-forced log-probabilities") {
  Generator gen(31);
  Seq2Seq model = small_model(AttentionKind::additive, gen);
  randomize(model, gen, 2.0);
  const std::vector<Indices> sources = {{3, 4}, {0, 3, 4, 4}, {1}};
  const TokenBatch src = pad_tokens(sources, 0, -1, float64);
  const double alpha = 0.7;
  for (bool use_beam : {false, true}) {
    const DecodeOptions options{.max_length = 5, .beam_width = 3, .alpha = alpha};
    const std::vector<Hypothesis> hs = use_beam ? model.beam_search(src.ids, src.mask, options) : model.greedy(src.ids, src.mask, options);
    for (std::size_t b = 0; b < sources.size(); ++b) {
      const Hypothesis& h = hs[b];
      const TokenBatch one = pad_tokens({sources[b]}, 0, -1, float64);
      CHECK(h.log_prob == doctest::Approx(sequence_log_prob(model, one.ids, h.tokens, h.ended)).epsilon(1e-12));
      const double n = static_cast<double>(h.tokens.size() + (h.ended ? 1 : 0));
      CHECK(h.score == doctest::Approx(h.log_prob / std::pow((5 + n) / 6, alpha)).epsilon(1e-14));
      // Its attention rows are those of teacher forcing, and each sums to 1.
      Indices target = h.tokens;
      if (h.ended) target.push_back(kEos);
      const TokenBatch t = pad_tokens({target}, 0, -1, float64);
      const Tensor tf = model.run(one.ids, Tensor(), t.ids).attention;  // (n, S, 1)
      const std::vector<double> a = h.attention.to_vector(), r = tf.to_vector();
      REQUIRE(a.size() == r.size());
      for (std::size_t k = 0; k < a.size(); ++k) CHECK(a[k] == doctest::Approx(r[k]).epsilon(1e-12));
      for (std::size_t i = 0; i < h.attention.dim(0); ++i) {
        double total = 0;
        for (std::size_t s = 0; s < h.attention.dim(1); ++s) total += h.attention.at({i, s});
        CHECK(total == doctest::Approx(1.0).epsilon(1e-14));
      }
    }
  }
}

TEST_CASE("Seq2Seq: beam search returns finished hypotheses, and only those cut at max_length without eos") {
  Generator gen(32);
  Seq2Seq model = small_model(AttentionKind::general, gen);
  randomize(model, gen, 2.0);
  model.output().bias.data<double>()[kEos] -= 0.5;  // some hypotheses end early, others run on
  const TokenBatch src = pad_tokens({{3, 4}, {0, 3, 4, 4}, {1}, {4, 4, 0}, {2, 2}, {3}}, 0, -1, float64);
  const DecodeOptions options{.max_length = 6, .beam_width = 3, .alpha = 0.0};
  const std::vector<std::vector<Hypothesis>> all = model.beam_search_nbest(src.ids, src.mask, options);
  REQUIRE(all.size() == 6);
  std::size_t ended = 0, cut = 0;
  for (const std::vector<Hypothesis>& hs : all) {
    CHECK(!hs.empty());
    CHECK(hs.size() <= 3);
    for (const Hypothesis& h : hs) {
      if (h.ended) ++ended;
      else {
        ++cut;
        CHECK(h.tokens.size() == options.max_length);  // a hypothesis still live mid-search is no result
      }
    }
  }
  CHECK(ended > 0);
  CHECK(cut > 0);
}

TEST_CASE("Seq2Seq: a beam wider than the search space finds the exhaustive optimum") {
  // Target vocabulary 4 ({0, bos 1, eos 2, 3}), max_length 3: 1 + 3 + 9 hypotheses end with eos, 27
  // are cut at 3 tokens. A beam of 40 keeps all of them, so it must return the best by score.
  Generator gen(33);
  auto encoder = std::make_shared<Recurrent>(LSTM(3, 2, LSTMOptions{.dtype = float64}, RecurrentOptions{}, gen));
  Seq2Seq model(5, 4, encoder, {.embedding_size = 3, .hidden_size = 2, .bos = kBos, .eos = kEos, .dtype = float64}, gen);
  randomize(model, gen, 1.5);
  const TokenBatch src = pad_tokens({{3, 4, 0}}, 0, -1, float64);
  // With eos made unlikely the best hypothesis is a long one, which only a beam that carries each
  // hypothesis's own decoder state from step to step scores right.
  for (double alpha : {0.0, 1.0, -1.0}) {
    CAPTURE(alpha);
    if (alpha < 0) {
      model.output().bias.data<double>()[kEos] -= 3.0;
      alpha = 0.0;
    }
    double best = -1e300;
    Indices best_tokens;
    bool best_ended = false;
    const Indices symbols = {0, 1, 3};
    std::function<void(Indices)> search = [&](Indices prefix) {
      for (bool ended : {true, false}) {
        if (!ended && prefix.size() < 3) continue;  // only a full-length sequence may lack eos
        if (ended && prefix.size() >= 3) continue;
        const double lp = sequence_log_prob(model, src.ids, prefix, ended);
        const double score = lp / std::pow((5.0 + prefix.size() + ended) / 6.0, alpha);
        if (score > best) best = score, best_tokens = prefix, best_ended = ended;
      }
      if (prefix.size() < 3)
        for (std::int64_t s : symbols) {
          Indices next = prefix;
          next.push_back(s);
          search(next);
        }
    };
    search({});
    const Hypothesis h = model.beam_search(src.ids, Tensor(), {.max_length = 3, .beam_width = 40, .alpha = alpha})[0];
    CHECK(h.tokens == best_tokens);
    CHECK(h.ended == best_ended);
    CHECK(h.score == doctest::Approx(best).epsilon(1e-12));
    // Every hypothesis of the beam (all 40 here), not only the best, is scored right: each carried its
    // own decoder state.
    const std::vector<Hypothesis> all =
        model.beam_search_nbest(src.ids, Tensor(), {.max_length = 3, .beam_width = 40, .alpha = alpha})[0];
    CHECK(all.size() == 40);
    CHECK(all[0].tokens == h.tokens);
    for (std::size_t k = 0; k < all.size(); ++k) {
      CAPTURE(k);
      CHECK(all[k].log_prob == doctest::Approx(sequence_log_prob(model, src.ids, all[k].tokens, all[k].ended)).epsilon(1e-12));
      if (k) CHECK(all[k].score <= all[k - 1].score);
    }
  }
}

TEST_CASE("Seq2Seq: learns to reverse short sequences exactly") {
  // Tokens 3…7, lengths 2 to 5; the target is the source reversed. A bidirectional LSTM encoder, an
  // LSTM decoder with general attention, Adam, 500 steps of 32 (at 300 a late loss spike in one build
  // left 3 of 40 wrong). Then greedy and beam search reverse held-out sequences.
  Generator gen(35);
  auto encoder = std::make_shared<Recurrent>(LSTM(8, 16, {}, RecurrentOptions{.bidirectional = true}, gen));
  Seq2Seq model(8, 8, encoder, {.embedding_size = 8, .hidden_size = 32, .attention = AttentionKind::general,
                                .bos = kBos, .eos = kEos}, gen);
  Adam opt(model.parameters(), {.lr = 0.01});
  Generator data(36);
  auto sample = [&](std::size_t n, std::vector<Indices>& src, std::vector<Indices>& tgt) {
    src.clear();
    tgt.clear();
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t len = 2 + data.next_u32() % 4;
      Indices s;
      for (std::size_t k = 0; k < len; ++k) s.push_back(3 + data.next_u32() % 5);
      src.push_back(s);
      tgt.emplace_back(s.rbegin(), s.rend());
    }
  };
  std::vector<Indices> src, tgt;
  double loss = 0;
  for (int step = 0; step < 500; ++step) {
    sample(32, src, tgt);
    const TokenBatch s = pad_tokens(src), t = pad_tokens(tgt, 0, kEos);
    Tensor l = Seq2Seq::loss(model(s.ids, s.mask, t.ids), t.ids, t.mask);
    loss = l.item();
    opt.zero_grad();
    l.backward();
    clip_grad_norm(model.parameters(), 1.0);
    opt.step();
  }
  CHECK(loss < 0.05);
  model.eval();
  sample(40, src, tgt);
  const TokenBatch s = pad_tokens(src);
  const std::vector<Hypothesis> greedy = model.greedy(s.ids, s.mask, {.max_length = 8});
  const std::vector<Hypothesis> beam = model.beam_search(s.ids, s.mask, {.max_length = 8, .beam_width = 3, .alpha = 0.6});
  std::size_t right_greedy = 0, right_beam = 0;
  for (std::size_t i = 0; i < src.size(); ++i) {
    right_greedy += greedy[i].ended && greedy[i].tokens == tgt[i];
    right_beam += beam[i].ended && beam[i].tokens == tgt[i];
  }
  CHECK(right_greedy == src.size());
  CHECK(right_beam == src.size());
  // The attention of a reversal is an anti-diagonal: output step i looks mostly at source step n−1−i.
  std::size_t on_diagonal = 0, total = 0;
  for (std::size_t i = 0; i < src.size(); ++i) {
    const std::size_t n = src[i].size();
    for (std::size_t r = 0; r < n; ++r) {
      std::size_t arg = 0;
      for (std::size_t c = 1; c < n; ++c)
        if (greedy[i].attention.at({r, c}) > greedy[i].attention.at({r, arg})) arg = c;
      on_diagonal += arg == n - 1 - r;
      ++total;
    }
  }
  CHECK(on_diagonal > 0.8 * total);
}

TEST_CASE("Seq2Seq: save and load give the same model") {
  Generator gen(37);
  Seq2Seq model = small_model(AttentionKind::additive, gen);
  Generator other(38);
  Seq2Seq copy = small_model(AttentionKind::additive, other);
  const Data d = small_data();
  const std::string path = (std::filesystem::temp_directory_path() / "rewind_seq2seq_test.npz").string();
  save(model, path);
  const std::vector<double> before = copy(d.source.ids, d.source.mask, d.target.ids).to_vector();
  load(copy, path);
  std::remove(path.c_str());
  const std::vector<double> want = model(d.source.ids, d.source.mask, d.target.ids).to_vector();
  const std::vector<double> got = copy(d.source.ids, d.source.mask, d.target.ids).to_vector();
  CHECK(before != want);
  CHECK(got == want);
}

TEST_CASE("Seq2Seq: parameter names, sizes and printing") {
  Generator gen(39);
  Seq2Seq model = small_model(AttentionKind::additive, gen);
  std::vector<std::string> keys;
  for (auto& [k, p] : model.named_parameters()) keys.push_back(k);
  const std::vector<std::string> want_prefixes = {"source_embedding.weight", "encoder.layer0.cell.weight_ih",
                                                  "bridge0.weight", "bridge1.weight", "target_embedding.weight",
                                                  "decoder.weight_ih", "attention.weight_query", "combine.weight",
                                                  "output.weight", "output.bias"};
  for (const std::string& k : want_prefixes) CHECK_MESSAGE(std::find(keys.begin(), keys.end(), k) != keys.end(), k);
  // The decoder reads [embedding 3 ; context 4], has 3 units; combine maps [h 3 ; c 4] → 3.
  CHECK(model.decoder().input_size() == 7);
  CHECK(model.decoder().output_size() == 3);
  CHECK(model.output().in_features() == 3);
  const std::string r = model.repr();
  CHECK(r.rfind("Seq2Seq(", 0) == 0);
  CHECK(r.find("Attention(additive, 3 => 4, 3)") != std::string::npos);
  std::ostringstream os;
  os << model;
  CHECK(os.str() == r);
  CHECK(model.summary().find("bridge0") != std::string::npos);
  // Without attention: no attention, combine or context input; no bridge when the sizes agree.
  Generator gen2(40);
  Seq2Seq plain = small_model(std::nullopt, gen2, 4);
  CHECK(!plain.has_attention());
  CHECK(plain.decoder().input_size() == 3);
  for (auto& [k, p] : plain.named_parameters()) {
    CHECK(k.find("attention") == std::string::npos);
    CHECK(k.find("combine") == std::string::npos);
    CHECK(k.find("bridge") == std::string::npos);
  }
  CHECK_THROWS_AS(plain.attention(), ValueError);
}

TEST_CASE("Seq2Seq: the bridge starts the decoder from the encoder's final states") {
  // A unidirectional GRU encoder of 3 units into an LSTM decoder of 3: h comes straight from the
  // encoder (no projection), c (which a GRU lacks) from the decoder's own initial state (zeros).
  Generator gen(41);
  auto encoder = std::make_shared<Recurrent>(GRU(3, 3, GRUOptions{.dtype = float64}, RecurrentOptions{}, gen));
  Seq2Seq model(5, 6, encoder, {.embedding_size = 3, .attention = std::nullopt, .dtype = float64}, gen);
  const Data d = small_data();
  const Encoded enc = model.encode(d.source.ids, d.source.mask);
  REQUIRE(enc.initial.size() == 2);
  const State& last = model.encoder().final_state(0);
  CHECK(enc.initial[0].to_vector() == last[0].to_vector());
  CHECK(enc.initial[1].to_vector() == std::vector<double>(6, 0.0));
  // The encoder's final state of column 1 (length 2) is the state after its second step.
  const Tensor alone = model.encoder()(model.source_embedding()(slice(slice(d.source.ids, 1, 1, 2), 0, 0, 2)));
  const std::vector<double> a = column(enc.initial[0], 1), b = slice(alone, 0, 1, 2).to_vector();
  for (std::size_t k = 0; k < 3; ++k) CHECK(a[k] == doctest::Approx(b[k]).epsilon(1e-13));
}

TEST_CASE("Seq2Seq: bad inputs and options throw naming what is wrong") {
  Generator gen(43);
  Seq2Seq model = small_model(AttentionKind::general, gen);
  const Data d = small_data();
  SUBCASE("source and mask shapes") {
    CHECK_THROWS_AS(model(Tensor::zeros({3}, float64), Tensor(), d.target.ids), ShapeError);
    CHECK_THROWS_AS(model(d.source.ids, Tensor::ones({3, 3}, float64), d.target.ids), ShapeError);
    CHECK_THROWS_AS(model(Tensor::zeros({0, 2}, float64), Tensor(), d.target.ids), ValueError);
    CHECK_THROWS_AS(model.greedy(Tensor::zeros({3, 2, 1}, float64)), ShapeError);
    // A source with a column of padding only cannot be attended to.
    CHECK_THROWS_AS(model(d.source.ids, mask_from_lengths({3, 0}, 3, float64), d.target.ids), ValueError);
  }
  SUBCASE("target shapes and ids") {
    CHECK_THROWS_AS(model(d.source.ids, d.source.mask, Tensor::zeros({3, 3}, float64)), ShapeError);
    CHECK_THROWS_AS(model(d.source.ids, d.source.mask, Tensor::full({2, 2}, 6, float64)), ValueError);
    CHECK_THROWS_AS(Seq2Seq::loss(Tensor::zeros({3, 6, 2}, float64), Tensor::zeros({3, 3}, float64)), ShapeError);
    CHECK_THROWS_AS(Seq2Seq::loss(Tensor::zeros({3, 6, 2}, float64), d.target.ids, Tensor::ones({2, 2}, float64)), ShapeError);
  }
  SUBCASE("decode options") {
    CHECK_THROWS_AS(model.greedy(d.source.ids, d.source.mask, {.max_length = 0}), ValueError);
    CHECK_THROWS_AS(model.beam_search(d.source.ids, d.source.mask, {.beam_width = 0}), ValueError);
    CHECK_THROWS_AS(model.beam_search(d.source.ids, d.source.mask, {.alpha = -1}), ValueError);
  }
  SUBCASE("construction") {
    auto enc = [&] { return std::make_shared<Recurrent>(LSTM(3, 2, LSTMOptions{.dtype = float64}, RecurrentOptions{}, gen)); };
    CHECK_THROWS_AS(Seq2Seq(5, 0, enc(), {.dtype = float64}), ValueError);
    CHECK_THROWS_AS(Seq2Seq(5, 6, enc(), {.eos = 6, .dtype = float64}), ValueError);
    CHECK_THROWS_AS(Seq2Seq(5, 6, nullptr), ValueError);
    CHECK_THROWS_AS(Seq2Seq(5, 6, enc(), {.hidden_size = 3, .attention = AttentionKind::dot, .dtype = float64}), ShapeError);
    CHECK_THROWS_AS(Seq2Seq(5, 6, enc(), {.dtype = float32}), DtypeError);
    CHECK_THROWS_AS(Seq2Seq(5, 6, enc(), {.dropout = 1.0, .dtype = float64}), ValueError);
    // A decoder cell of the wrong input size.
    CellFactory wrong = [](std::size_t in, std::size_t) { return std::make_shared<GRUCell>(in + 1, 2, GRUOptions{.dtype = float64}); };
    try {
      Seq2Seq(5, 6, enc(), {.decoder_cell = wrong, .dtype = float64});
      FAIL("no exception");
    } catch (const ShapeError& e) {
      CHECK(std::string(e.what()).find("decoder cell") != std::string::npos);
    }
  }
  SUBCASE("the one-input call") { CHECK_THROWS_AS(model.forward(d.source.ids), ValueError); }
}

TEST_CASE("Seq2Seq: pad_tokens pads, appends eos and builds the mask") {
  const TokenBatch t = pad_tokens({{5, 6}, {7}, {}}, 0, kEos);
  CHECK(t.ids.shape() == Shape{3, 3});
  CHECK(t.lengths == std::vector<std::size_t>{3, 2, 1});
  CHECK(t.ids.to_vector() == std::vector<double>{5, 7, 2, 6, 2, 0, 2, 0, 0});
  CHECK(t.mask.to_vector() == std::vector<double>{1, 1, 1, 1, 1, 0, 1, 0, 0});
  CHECK_THROWS_AS(pad_tokens({}), ValueError);
  CHECK_THROWS_AS(pad_tokens({{1}, {}}), ValueError);
  CHECK_THROWS_AS(pad_tokens({{1, -2}}), ValueError);
}
