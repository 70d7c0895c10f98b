// Attention (nn/attention.hpp): the three scores against a plain-loop reference, exact zeros on
// padding, gradients by finite differences in float64 with a mask, and the errors.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include <rewind.hpp>

using namespace rwd;

namespace {

constexpr std::size_t T = 4, Q = 3, M = 5, B = 3;

// Every parameter gets fresh values in [−0.8, 0.8].
void randomize(Module& m, Generator& gen) {
  for (auto& [k, p] : m.named_parameters()) p.assign(Tensor::uniform(p.shape(), -0.8, 0.8, gen, p.dtype()));
}

// Lengths 4, 2, 3 (column 1 and 2 padded).
Tensor lengths_mask() { return mask_from_lengths({4, 2, 3}, T, float64); }

// The reference: scores, masked softmax and context by plain loops over the values.
struct Reference {
  std::vector<double> weights, context;  // (T, B), (M, B)
};

Reference reference(const Attention& attn, const Tensor& query, const Tensor& memory, const Tensor& mask) {
  const std::vector<double> q = query.to_vector(), m = memory.to_vector(), k = mask.to_vector();
  auto mem = [&](std::size_t t, std::size_t f, std::size_t b) { return m[(t * M + f) * B + b]; };
  std::vector<double> score(T * B);
  for (std::size_t t = 0; t < T; ++t)
    for (std::size_t b = 0; b < B; ++b) {
      double s = 0;
      if (attn.kind() == AttentionKind::dot) {
        for (std::size_t f = 0; f < M; ++f) s += mem(t, f, b) * q[f * B + b];
      } else if (attn.kind() == AttentionKind::general) {
        const std::vector<double> W = attn.weight.to_vector();  // (M, Q)
        for (std::size_t f = 0; f < M; ++f) {
          double wq = 0;
          for (std::size_t i = 0; i < Q; ++i) wq += W[f * Q + i] * q[i * B + b];
          s += mem(t, f, b) * wq;
        }
      } else {
        const std::size_t A = attn.attention_size();
        const std::vector<double> Wq = attn.weight_query.to_vector(), Wk = attn.weight_key.to_vector(), v = attn.v.to_vector();
        for (std::size_t a = 0; a < A; ++a) {
          double pre = 0;
          for (std::size_t i = 0; i < Q; ++i) pre += Wq[a * Q + i] * q[i * B + b];
          for (std::size_t f = 0; f < M; ++f) pre += Wk[a * M + f] * mem(t, f, b);
          s += v[a] * std::tanh(pre);
        }
      }
      score[t * B + b] = s;
    }
  Reference r{std::vector<double>(T * B, 0.0), std::vector<double>(M * B, 0.0)};
  for (std::size_t b = 0; b < B; ++b) {
    double mx = -1e300, z = 0;
    for (std::size_t t = 0; t < T; ++t)
      if (k[t * B + b] != 0) mx = std::max(mx, score[t * B + b]);
    for (std::size_t t = 0; t < T; ++t)
      if (k[t * B + b] != 0) z += std::exp(score[t * B + b] - mx);
    for (std::size_t t = 0; t < T; ++t)
      if (k[t * B + b] != 0) r.weights[t * B + b] = std::exp(score[t * B + b] - mx) / z;
    for (std::size_t f = 0; f < M; ++f)
      for (std::size_t t = 0; t < T; ++t) r.context[f * B + b] += r.weights[t * B + b] * mem(t, f, b);
  }
  return r;
}

Attention make(AttentionKind kind, Generator& gen) {
  Attention a(kind, kind == AttentionKind::dot ? M : Q, M, {.attention_size = 4, .dtype = float64}, gen);
  randomize(a, gen);
  return a;
}

}  // namespace

TEST_CASE("Attention: additive, dot and general match a plain-loop reference with a mask") {
  for (AttentionKind kind : {AttentionKind::additive, AttentionKind::dot, AttentionKind::general}) {
    CAPTURE(to_string(kind));
    Generator gen(3);
    Attention attn = make(kind, gen);
    const Tensor query = Tensor::uniform({attn.query_size(), B}, -1, 1, gen, float64);
    const Tensor memory = Tensor::uniform({T, M, B}, -1, 1, gen, float64);
    const Tensor mask = lengths_mask();
    const AttentionOutput out = attn(query, memory, mask);
    const Reference ref = reference(attn, query, memory, mask);
    REQUIRE(out.weights.shape() == Shape{T, B});
    REQUIRE(out.context.shape() == Shape{M, B});
    const std::vector<double> w = out.weights.to_vector(), c = out.context.to_vector();
    for (std::size_t k = 0; k < w.size(); ++k) CHECK(w[k] == doctest::Approx(ref.weights[k]).epsilon(1e-12));
    for (std::size_t k = 0; k < c.size(); ++k) CHECK(c[k] == doctest::Approx(ref.context[k]).epsilon(1e-12));
  }
}

TEST_CASE("Attention: padded steps get exactly zero weight and the columns sum to 1 over the real steps") {
  for (AttentionKind kind : {AttentionKind::additive, AttentionKind::dot, AttentionKind::general}) {
    CAPTURE(to_string(kind));
    for (Dtype dtype : {float32, float64}) {
      Generator gen(5);
      Attention attn = make(kind, gen);
      attn.to(dtype);
      const Tensor query = Tensor::uniform({attn.query_size(), B}, -1, 1, gen, dtype);
      // Padding that dominates any score an ε-masking (score − 1e9, or weights·mask + ε) would let
      // through: large values at the padded steps of the memory.
      std::vector<double> m = Tensor::uniform({T, M, B}, -1, 1, gen, float64).to_vector();
      const std::vector<std::size_t> len = {4, 2, 3};
      for (std::size_t t = 0; t < T; ++t)
        for (std::size_t f = 0; f < M; ++f)
          for (std::size_t b = 0; b < B; ++b)
            if (t >= len[b]) m[(t * M + f) * B + b] = 50.0;
      const Tensor memory = Tensor::from_vector(m, {T, M, B}, dtype);
      const AttentionOutput out = attn(query, memory, mask_from_lengths(len, T, dtype));
      const std::vector<double> w = out.weights.to_vector();
      for (std::size_t b = 0; b < B; ++b) {
        double total = 0;
        for (std::size_t t = 0; t < T; ++t) {
          if (t >= len[b]) CHECK(w[t * B + b] == 0.0);  // exactly, not ε
          else CHECK(w[t * B + b] > 0.0);
          total += w[t * B + b];
        }
        CHECK(total == doctest::Approx(1.0).epsilon(dtype == float32 ? 1e-6 : 1e-14));
      }
      // The context of a padded column is that of its memory cut to the real steps (the padding
      // contributes exactly nothing).
      for (std::size_t b = 1; b < B; ++b) {
        const Tensor alone_memory = slice(slice(memory, 2, b, b + 1), 0, 0, len[b]);
        const AttentionOutput alone = attn(slice(query, 1, b, b + 1), alone_memory);
        const std::vector<double> c = out.context.to_vector(), ca = alone.context.to_vector();
        for (std::size_t f = 0; f < M; ++f)
          CHECK(c[f * B + b] == doctest::Approx(ca[f]).epsilon(dtype == float32 ? 1e-5 : 1e-13));
      }
    }
  }
}

TEST_CASE("Attention: gradients by finite differences in float64 with a mask (additive, dot, general)") {
  for (AttentionKind kind : {AttentionKind::additive, AttentionKind::dot, AttentionKind::general}) {
    CAPTURE(to_string(kind));
    Generator gen(7);
    Attention attn = make(kind, gen);
    Tensor query = Tensor::uniform({attn.query_size(), B}, -1, 1, gen, float64).set_requires_grad().set_name("query");
    Tensor memory = Tensor::uniform({T, M, B}, -1, 1, gen, float64).set_requires_grad().set_name("memory");
    const Tensor mask = lengths_mask();
    std::vector<Tensor> inputs = {query, memory};
    for (auto& [k, p] : attn.named_parameters()) inputs.push_back(p.set_name(k));
    // Both outputs: the context and the weights, scalarized with gradcheck's random weights.
    auto f = [&](const std::vector<Tensor>&) {
      const AttentionOutput out = attn(query, memory, mask);
      return concat({reshape(out.context, {M * B}), reshape(out.weights, {T * B})}, 0);
    };
    const GradcheckReport r = gradcheck(f, inputs);
    CHECK_MESSAGE(r.ok(), r.str());
  }
}

TEST_CASE("Attention: no gradient reaches the padded steps of the memory") {
  Generator gen(9);
  for (AttentionKind kind : {AttentionKind::additive, AttentionKind::dot, AttentionKind::general}) {
    CAPTURE(to_string(kind));
    Attention attn = make(kind, gen);
    Tensor memory = Tensor::uniform({T, M, B}, -1, 1, gen, float64).set_requires_grad();
    const Tensor query = Tensor::uniform({attn.query_size(), B}, -1, 1, gen, float64);
    const AttentionOutput out = attn(query, memory, lengths_mask());
    sum(out.context * Tensor::uniform({M, B}, 0.5, 1.5, gen, float64)).backward();
    const std::vector<double> g = memory.grad().to_vector();
    const std::vector<std::size_t> len = {4, 2, 3};
    bool some_real_nonzero = false;
    for (std::size_t t = 0; t < T; ++t)
      for (std::size_t f = 0; f < M; ++f)
        for (std::size_t b = 0; b < B; ++b) {
          const double v = g[(t * M + f) * B + b];
          if (t >= len[b]) CHECK(v == 0.0);
          else some_real_nonzero |= v != 0.0;
        }
    CHECK(some_real_nonzero);
  }
}

TEST_CASE("Attention: attend reads the keys prepare computed once per memory") {
  Generator gen(11);
  Attention attn = make(AttentionKind::additive, gen);
  const Tensor memory = Tensor::uniform({T, M, B}, -1, 1, gen, float64);
  AttentionMemory prepared = attn.prepare(memory);
  REQUIRE(prepared.keys.shape() == Shape{4, T, B});  // (A, T, B)
  // keys[:, t, b] = W_k m[t, :, b]
  const std::vector<double> keys = prepared.keys.to_vector(), m = memory.to_vector(), Wk = attn.weight_key.to_vector();
  for (std::size_t a = 0; a < 4; ++a)
    for (std::size_t t = 0; t < T; ++t)
      for (std::size_t b = 0; b < B; ++b) {
        double k = 0;
        for (std::size_t f = 0; f < M; ++f) k += Wk[a * M + f] * m[(t * M + f) * B + b];
        CHECK(keys[(a * T + t) * B + b] == doctest::Approx(k).epsilon(1e-12));
      }
  // A step does not redo W_k·memory: with the keys changed, the scores follow the keys.
  const Tensor query = Tensor::uniform({Q, B}, -1, 1, gen, float64);
  const std::vector<double> before = attn.scores(query, prepared).to_vector();
  prepared.keys = Tensor::zeros(prepared.keys.shape(), float64);
  const std::vector<double> after = attn.scores(query, prepared).to_vector();
  CHECK(before != after);
  // … and the zero keys give every step the same score vᵀ tanh(W_q q).
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t t = 1; t < T; ++t) CHECK(after[t * B + b] == after[b]);
}

TEST_CASE("Attention: select picks and repeats batch columns of a prepared memory") {
  Generator gen(13);
  Attention attn = make(AttentionKind::general, gen);
  const Tensor memory = Tensor::uniform({T, M, B}, -1, 1, gen, float64);
  const AttentionMemory prepared = attn.prepare(memory, lengths_mask());
  const AttentionMemory picked = prepared.select({2, 2, 0});
  CHECK(picked.memory.shape() == Shape{T, M, 3});
  CHECK(picked.mask.shape() == Shape{T, 3});
  const Tensor query = Tensor::uniform({Q, 1}, -1, 1, gen, float64);
  const AttentionOutput one = attn.attend(query, prepared.select({2}));
  const AttentionOutput three = attn.attend(concat({query, query, query}, 1), picked);
  const std::vector<double> w1 = one.weights.to_vector(), w3 = three.weights.to_vector();
  for (std::size_t t = 0; t < T; ++t) {
    CHECK(w3[t * 3 + 0] == doctest::Approx(w1[t]).epsilon(1e-14));
    CHECK(w3[t * 3 + 1] == doctest::Approx(w1[t]).epsilon(1e-14));
  }
  CHECK(w1[3] == 0.0);  // column 2 has 3 real steps
}

TEST_CASE("Attention: bad shapes, masks and dtypes throw naming the layer and the shapes") {
  Generator gen(15);
  Attention attn(AttentionKind::additive, Q, M, {.attention_size = 4, .dtype = float64}, gen);
  const Tensor memory = Tensor::uniform({T, M, B}, -1, 1, gen, float64);
  const Tensor query = Tensor::uniform({Q, B}, -1, 1, gen, float64);
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  SUBCASE("memory of the wrong rank or features") {
    CHECK_THROWS_AS(attn(query, Tensor::zeros({M, B}, float64)), ShapeError);
    const std::string msg = message([&] { attn(query, Tensor::zeros({T, M + 1, B}, float64)); });
    CHECK(msg.find("Attention(additive, 3 => 5, 4)") != std::string::npos);
    CHECK(msg.find("(4, 6, 3)") != std::string::npos);
  }
  SUBCASE("query of the wrong size or batch") {
    CHECK_THROWS_AS(attn(Tensor::zeros({Q + 1, B}, float64), memory), ShapeError);
    const std::string msg = message([&] { attn(Tensor::zeros({Q, B + 1}, float64), memory); });
    CHECK(msg.find("query (3, 4)") != std::string::npos);
    CHECK(msg.find("(4, 5, 3)") != std::string::npos);
    CHECK_THROWS_AS(attn(Tensor::zeros({Q}, float64), memory), ShapeError);
  }
  SUBCASE("mask of the wrong shape, values other than 0 and 1, a column without a real step") {
    CHECK_THROWS_AS(attn(query, memory, Tensor::ones({T, B + 1}, float64)), ShapeError);
    Tensor half = Tensor::ones({T, B}, float64);
    half.data<double>()[1] = 0.5;
    CHECK_THROWS_AS(attn(query, memory, half), ValueError);
    const std::string msg = message([&] { attn(query, memory, mask_from_lengths({4, 0, 3}, T, float64)); });
    CHECK(msg.find("column 1 has no real step") != std::string::npos);
  }
  SUBCASE("empty memory, batch 0") {
    CHECK_THROWS_AS(attn(query, Tensor::zeros({0, M, B}, float64)), ValueError);
    CHECK_THROWS_AS(attn(Tensor::zeros({Q, 0}, float64), Tensor::zeros({T, M, 0}, float64)), ShapeError);
  }
  SUBCASE("dtypes") {
    CHECK_THROWS_AS(attn(query.to(float32), memory), DtypeError);
    CHECK_THROWS_AS(attn(query, memory.to(float32)), DtypeError);
    Attention dot(AttentionKind::dot, M, M);
    CHECK_THROWS_AS(dot(Tensor::zeros({M, B}, float64), Tensor::zeros({T, M, B}, float32)), DtypeError);
  }
  SUBCASE("dot attention between different sizes, size 0, the one-input call") {
    CHECK_THROWS_AS(Attention(AttentionKind::dot, Q, M), ShapeError);
    CHECK_THROWS_AS(Attention(AttentionKind::general, 0, M), ValueError);
    CHECK_THROWS_AS(attn.forward(query), ValueError);
  }
}

TEST_CASE("Attention: parameters, names and printing") {
  Generator gen(17);
  Attention additive(AttentionKind::additive, 3, 5, {.attention_size = 4}, gen);
  Attention dot(AttentionKind::dot, 5, 5);
  Attention general(AttentionKind::general, 3, 5, {}, gen);
  CHECK(additive.repr() == "Attention(additive, 3 => 5, 4)");
  CHECK(dot.repr() == "Attention(dot, 5 => 5)");
  CHECK(general.repr() == "Attention(general, 3 => 5)");
  CHECK(additive.num_parameters() == 4 * 3 + 4 * 5 + 4);
  CHECK(dot.num_parameters() == 0);
  const NamedTensors p = general.named_parameters();
  REQUIRE(p.size() == 1);
  CHECK(p[0].first == "weight");
  CHECK(p[0].second.shape() == Shape{5, 3});
  CHECK(Attention(AttentionKind::additive, 3, 5).attention_size() == 5);  // A defaults to the memory size
}
