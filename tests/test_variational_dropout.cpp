// Variational dropout in Recurrent (RecurrentOptions::input_dropout, recurrent_dropout): the masks
// seen directly by a probe cell (one per sequence, reused at every step, different per example, per
// call, per layer and direction; c untouched), padded steps, the stateful one-step mode, eval and p = 0,
// bad p, and gradients by finite differences through a Recurrent in training mode for every cell.
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <set>

#include <rewind.hpp>

#include "support.hpp"

using namespace rwd;

namespace {

// A cell that records what each step receives: x and every state tensor. Its state and output are all
// ones, and so is its initial state, so with inputs of ones what it receives is the masks themselves.
class ProbeCell : public Cell {
 public:
  ProbeCell(std::size_t input, std::size_t hidden, std::size_t n_state) : m_input(input), m_hidden(hidden), m_n(n_state) {
    register_parameter("w", Tensor::zeros({1}, float64));  // gives the cell its dtype
  }
  std::pair<Tensor, State> step(const Tensor& x, const State& state) override {
    check_step(x, state, m_n);
    xs.push_back(x.to_vector());
    hs.push_back(state[0].to_vector());
    if (m_n > 1) cs.push_back(state[1].to_vector());
    const Tensor one = Tensor::ones(state[0].shape(), float64);
    return {one, State(m_n, one)};
  }
  State initial_state(std::size_t batch) const override {
    return State(m_n, Tensor::ones(column_shape(m_hidden, batch), float64));
  }
  std::size_t input_size() const override { return m_input; }
  std::size_t output_size() const override { return m_hidden; }
  std::string repr() const override { return "ProbeCell(" + std::to_string(m_input) + " => " + std::to_string(m_hidden) + ")"; }

  std::vector<std::vector<double>> xs, hs, cs;

 private:
  std::size_t m_input, m_hidden, m_n;
};

std::vector<Tensor> ones_steps(std::size_t T, std::size_t features, std::size_t batch) {
  return std::vector<Tensor>(T, Tensor::ones({features, batch}, float64));
}

// Every entry 0 or 1/(1 − p), some of each.
void check_is_mask(const std::vector<double>& m, double p) {
  std::size_t zeros = 0;
  for (double v : m) {
    CHECK((v == 0.0 || v == doctest::Approx(1.0 / (1.0 - p)).epsilon(1e-15)));
    zeros += v == 0.0;
  }
  CHECK(zeros > 0);
  CHECK(zeros < m.size());
}

// Column b of a (rows, batch) row-major vector.
std::vector<double> column(const std::vector<double>& m, std::size_t batch, std::size_t b) {
  std::vector<double> c;
  for (std::size_t k = b; k < m.size(); k += batch) c.push_back(m[k]);
  return c;
}

}  // namespace

TEST_CASE("variational dropout: one mask per sequence, reused at every step, on x and on h but not on c") {
  const double p = 0.4;
  auto probe = std::make_shared<ProbeCell>(16, 12, 2);
  Generator g5(5);
  Recurrent r({probe}, {.input_dropout = p, .recurrent_dropout = p}, g5);
  const std::size_t T = 5, batch = 8;
  r(ones_steps(T, 16, batch));
  REQUIRE(probe->xs.size() == T);
  check_is_mask(probe->xs[0], p);
  check_is_mask(probe->hs[0], p);  // from the initial state of ones on: step 0 sees m_h too
  for (std::size_t t = 1; t < T; ++t) {
    CHECK(probe->xs[t] == probe->xs[0]);  // the same m_x at every step
    CHECK(probe->hs[t] == probe->hs[0]);  // the same m_h at every step
  }
  for (const auto& c : probe->cs) CHECK(c == std::vector<double>(12 * batch, 1.0));  // c is never dropped
  // Each example its own mask: the 8 columns are not all the same.
  std::set<std::vector<double>> cols_x, cols_h;
  for (std::size_t b = 0; b < batch; ++b) {
    cols_x.insert(column(probe->xs[0], batch, b));
    cols_h.insert(column(probe->hs[0], batch, b));
  }
  CHECK(cols_x.size() > 1);
  CHECK(cols_h.size() > 1);
  // The masks are not the same for x and for h (they differ in size, so compare the first 12 rows).
  CHECK(std::vector<double>(probe->xs[0].begin(), probe->xs[0].begin() + 12 * batch) != probe->hs[0]);

  // The next call draws new masks.
  const auto first_x = probe->xs[0], first_h = probe->hs[0];
  probe->xs.clear(), probe->hs.clear();
  r(ones_steps(T, 16, batch));
  CHECK(probe->xs[0] != first_x);
  CHECK(probe->hs[0] != first_h);
  CHECK(probe->xs[T - 1] == probe->xs[0]);
}

TEST_CASE("variational dropout: only the option asked for acts, and the fraction dropped is about p") {
  SUBCASE("input_dropout alone") {
    auto probe = std::make_shared<ProbeCell>(50, 40, 1);
    Generator g6(6);
    Recurrent r({probe}, {.input_dropout = 0.25}, g6);
    r(ones_steps(3, 50, 40));
    check_is_mask(probe->xs[0], 0.25);
    CHECK(probe->hs[0] == std::vector<double>(1600, 1.0));
    std::size_t zeros = 0;
    for (double v : probe->xs[0]) zeros += v == 0.0;
    CHECK(std::abs(static_cast<double>(zeros) / 2000.0 - 0.25) < 0.05);
  }
  SUBCASE("recurrent_dropout alone") {
    auto probe = std::make_shared<ProbeCell>(50, 40, 1);
    Generator g7(7);
    Recurrent r({probe}, {.recurrent_dropout = 0.6}, g7);
    r(ones_steps(3, 50, 40));
    CHECK(probe->xs[0] == std::vector<double>(2000, 1.0));
    check_is_mask(probe->hs[2], 0.6);
    std::size_t zeros = 0;
    for (double v : probe->hs[2]) zeros += v == 0.0;
    CHECK(std::abs(static_cast<double>(zeros) / 1600.0 - 0.6) < 0.05);
  }
}

TEST_CASE("variational dropout: each layer and direction draws its own masks, stacked and bidirectional") {
  std::vector<std::shared_ptr<ProbeCell>> probes;
  std::vector<std::shared_ptr<Cell>> cells;
  for (std::size_t i = 0; i < 4; ++i) {
    probes.push_back(std::make_shared<ProbeCell>(i < 2 ? 6 : 16, 8, 1));
    cells.push_back(probes.back());
  }
  Generator g8(8);
  Recurrent r(cells, {.bidirectional = true, .input_dropout = 0.5, .recurrent_dropout = 0.5}, g8);
  r(ones_steps(4, 6, 5));
  for (const auto& pr : probes) {
    REQUIRE(pr->xs.size() == 4);
    check_is_mask(pr->xs[0], 0.5);
    check_is_mask(pr->hs[0], 0.5);
    for (std::size_t t = 1; t < 4; ++t) {
      CHECK(pr->xs[t] == pr->xs[0]);
      CHECK(pr->hs[t] == pr->hs[0]);
    }
  }
  CHECK(probes[0]->xs[0] != probes[1]->xs[0]);  // forward and reverse of layer 0
  CHECK(probes[0]->hs[0] != probes[1]->hs[0]);
  CHECK(probes[2]->xs[0] != probes[3]->xs[0]);  // layer 1, whose input is layer 0's concatenated outputs
  CHECK(probes[0]->hs[0] != probes[2]->hs[0]);
}

TEST_CASE("variational dropout: a padded step keeps the carried state unmasked") {
  // Two twins draw the same masks (same seed, same shapes). One runs 4 steps with column 0 padded
  // after step 2; the other runs only the first 2 steps. Column 0's final state and last output must
  // agree: the carried state at padded steps is the real one, not m_h ⊙ h.
  Generator g1(9), g2(9);
  const RecurrentOptions opts{.input_dropout = 0.3, .recurrent_dropout = 0.5};
  Recurrent a = LSTM(3, 6, {.dtype = float64}, opts, g1);
  Recurrent b = LSTM(3, 6, {.dtype = float64}, opts, g2);
  Generator data(10);
  const Tensor seq = Tensor::uniform({4, 3, 2}, -1, 1, data, float64);
  RecurrentRun ra = a.run(split_steps(seq), mask_from_lengths({2, 4}, 4, float64));
  RecurrentRun rb = b.run(std::vector<Tensor>{split_steps(seq)[0], split_steps(seq)[1]});
  for (std::size_t k = 0; k < 2; ++k)
    CHECK(column(ra.final_states[0][k].to_vector(), 2, 0) == column(rb.final_states[0][k].to_vector(), 2, 0));
  CHECK(column(ra.last.to_vector(), 2, 0) == column(rb.last.to_vector(), 2, 0));
  CHECK(column(ra.outputs[3].to_vector(), 2, 0) == std::vector<double>(6, 0.0));
  // The final state is the cell's unmasked output (all ones from the probe), real step or padded.
  auto probe = std::make_shared<ProbeCell>(3, 6, 1);
  Generator g4(4);
  Recurrent pr({probe}, opts, g4);
  RecurrentRun rp = pr.run(ones_steps(4, 3, 2), mask_from_lengths({2, 4}, 4, float64));
  check_is_mask(probe->hs[3], 0.5);
  CHECK(rp.final_states[0][0].to_vector() == std::vector<double>(12, 1.0));
  // and the masks did act: without them the final state differs.
  Generator g3(9);
  Recurrent c = LSTM(3, 6, {.dtype = float64}, {}, g3);
  RecurrentRun rc = c.run(std::vector<Tensor>{split_steps(seq)[0], split_steps(seq)[1]});
  CHECK(rc.final_states[0][0].to_vector() != rb.final_states[0][0].to_vector());
}

TEST_CASE("variational dropout: stepping draws the masks at the first step after reset and keeps them until reset") {
  auto probe0 = std::make_shared<ProbeCell>(10, 12, 2);
  auto probe1 = std::make_shared<ProbeCell>(12, 12, 2);
  Generator g11(11);
  Recurrent r({probe0, probe1}, {.input_dropout = 0.5, .recurrent_dropout = 0.5}, g11);
  const Tensor x = Tensor::ones({10, 4}, float64);
  for (int t = 0; t < 3; ++t) r(x);
  for (const auto* pr : {probe0.get(), probe1.get()}) {
    check_is_mask(pr->xs[0], 0.5);
    check_is_mask(pr->hs[0], 0.5);
    CHECK(pr->xs[2] == pr->xs[0]);
    CHECK(pr->hs[2] == pr->hs[0]);
    CHECK(pr->hs[1] == pr->hs[0]);
    CHECK(pr->cs[2] == std::vector<double>(48, 1.0));
  }
  // The carried state is unmasked: what the Recur keeps is the cell's output, all ones.
  CHECK(r.final_state(0)[0].to_vector() == std::vector<double>(48, 1.0));
  reset(r);
  r(x);
  CHECK(probe0->xs[3] != probe0->xs[0]);
  CHECK(probe0->hs[3] != probe0->hs[0]);
  r(x);
  CHECK(probe0->hs[4] == probe0->hs[3]);
  // A refused step (another batch without reset) leaves the carried state as it was.
  const std::vector<double> before = r.layer(0).state()[0].to_vector();
  CHECK_THROWS_AS(r(Tensor::ones({10, 3}, float64)), ShapeError);
  CHECK(r.layer(0).state()[0].to_vector() == before);
}

TEST_CASE("variational dropout: eval mode and p = 0 are exactly the layer without it") {
  Generator data(12);
  const Tensor seq = Tensor::uniform({5, 3, 4}, -1, 1, data, float64);
  Generator g1(13), g2(13), g3(13);
  Recurrent plain = LSTM(3, 5, {.dtype = float64}, {.num_layers = 2}, g1);
  Recurrent vd = LSTM(3, 5, {.dtype = float64}, {.num_layers = 2, .input_dropout = 0.5, .recurrent_dropout = 0.5}, g2);
  Recurrent zero = LSTM(3, 5, {.dtype = float64}, {.num_layers = 2, .input_dropout = 0.0, .recurrent_dropout = 0.0}, g3);
  const std::vector<double> want = plain(seq).to_vector();
  CHECK(vd(seq).to_vector() != want);  // training mode: the masks act
  vd.eval();
  CHECK(vd(seq).to_vector() == want);
  CHECK(zero(seq).to_vector() == want);
  // Stepping too.
  plain.eval();
  const Tensor x = split_steps(seq)[0];
  CHECK(vd(x).to_vector() == plain(x).to_vector());
  // The gradients as well, for p = 0 in training mode.
  plain.train();
  const Tensor w = Tensor::uniform({5, 5, 4}, -1, 1, data, float64);
  sum(plain(seq) * w).backward();
  sum(zero(seq) * w).backward();
  const auto pp = plain.parameters(), zp = zero.parameters();
  for (std::size_t k = 0; k < pp.size(); ++k) CHECK(pp[k].grad().to_vector() == zp[k].grad().to_vector());
}

TEST_CASE("variational dropout: a p outside 0 ≤ p < 1 is refused, naming the layer, and a p in it is printed") {
  CHECK(LSTM(1, 20, {}, {.num_layers = 2, .input_dropout = 0.1, .recurrent_dropout = 0.25}).repr() ==
        "LSTM(1 => 20, layers=2, input_dropout=0.1, recurrent_dropout=0.25)");
  CHECK(GRU(1, 2, {}, {.return_sequences = false, .recurrent_dropout = 0.5}).repr() ==
        "GRU(1 => 2, recurrent_dropout=0.5, return_sequences=false)");
  CHECK_THROWS_WITH_AS(LSTM(2, 3, {}, {.input_dropout = 1.0}), "LSTM(2 => 3): input_dropout must be in [0, 1), got 1",
                       ValueError);
  CHECK_THROWS_WITH_AS(GRU(2, 3, {}, {.num_layers = 2, .recurrent_dropout = -0.1}),
                       "GRU(2 => 3, layers=2): recurrent_dropout must be in [0, 1), got -0.1", ValueError);
  CHECK_THROWS_WITH_AS(LayerNormLSTM(2, 3, {}, {.recurrent_dropout = std::nan("")}),
                       "LayerNormLSTM(2 => 3): recurrent_dropout must be in [0, 1), got nan", ValueError);
}

TEST_CASE("variational dropout: gradients through a Recurrent in training mode, every cell, stacked, bidirectional, masked") {
  // Each evaluation wraps the same cells in a fresh Recurrent seeded alike, so every evaluation of the
  // loss draws the same masks (gradcheck evaluates it many times) and the parameters are the cells'.
  Generator gen(14);
  std::vector<std::pair<std::string, std::function<std::shared_ptr<Cell>(std::size_t)>>> kinds{
      {"RNN", [&](std::size_t in) { return std::make_shared<RNNCell>(in, 3, "tanh", CellOptions{.dtype = float64}, gen); }},
      {"LSTM", [&](std::size_t in) { return std::make_shared<LSTMCell>(in, 3, LSTMOptions{.dtype = float64}, gen); }},
      {"GRU", [&](std::size_t in) { return std::make_shared<GRUCell>(in, 3, GRUOptions{.dtype = float64}, gen); }},
      {"LayerNormLSTM", [&](std::size_t in) { return std::make_shared<LayerNormLSTMCell>(in, 3, LayerNormLSTMOptions{.dtype = float64}, gen); }},
      {"LayerNormGRU", [&](std::size_t in) { return std::make_shared<LayerNormGRUCell>(in, 3, LayerNormGRUOptions{.dtype = float64}, gen); }},
  };
  for (const auto& [name, make] : kinds) {
    CAPTURE(name);
    // 2 layers, bidirectional: layer 1 takes 6 features.
    std::vector<std::shared_ptr<Cell>> cells{make(2), make(2), make(6), make(6)};
    const RecurrentOptions opts{.bidirectional = true, .input_dropout = 0.3, .recurrent_dropout = 0.4};
    std::vector<Tensor> inputs;
    for (const auto& c : cells)
      for (auto& [k, p] : c->named_parameters()) inputs.push_back(p.set_name(k));
    const Tensor x = Tensor::uniform({3, 2, 3}, -1, 1, gen, float64).set_requires_grad().set_name("x");
    inputs.push_back(x);
    const Tensor mask = mask_from_lengths({3, 2, 1}, 3, float64);
    auto f = [&](const std::vector<Tensor>&) {
      Generator g15(15);
      Recurrent r(cells, opts, g15);
      return r(x, mask);
    };
    // The masks do act here: a model in eval mode gives another value.
    {
      NoGradGuard no_grad;
      Generator g15(15);
      Recurrent ev(cells, opts, g15);
      const std::vector<double> train_y = f({}).to_vector();
      ev.eval();
      CHECK(ev(x, mask).to_vector() != train_y);
    }
    GradcheckReport rep = gradcheck(f, inputs);
    CHECK_MESSAGE(rep.ok(), name << "\n" << rep.str());
  }
}

TEST_CASE("variational dropout: the hoisted input projection path gets the same masks as the stepped one") {
  // LSTMCell projects the inputs of several steps as one product when steps are big enough
  // (nn/sequence.cpp); the recurrent mask must reach step_projected too. Twins draw the same masks.
  Generator data(16);
  const Tensor seq = Tensor::uniform({4, 5, 3}, -1, 1, data, float64);
  const RecurrentOptions opts{.input_dropout = 0.3, .recurrent_dropout = 0.5};
  std::vector<double> hoisted, stepped;
  for (std::size_t min_inputs : {std::size_t{0}, std::size_t{1} << 30}) {
    const std::size_t old = detail::set_projection_min_inputs(min_inputs);
    Generator g(17);
    Recurrent r = LSTM(5, 4, {.dtype = float64}, opts, g);
    (min_inputs == 0 ? hoisted : stepped) = r(seq).to_vector();
    detail::set_projection_min_inputs(old);
  }
  REQUIRE(hoisted.size() == stepped.size());
  for (std::size_t k = 0; k < hoisted.size(); ++k) CHECK(hoisted[k] == doctest::Approx(stepped[k]).epsilon(1e-12));
  Generator g(17);
  Recurrent plain = LSTM(5, 4, {.dtype = float64}, {}, g);
  CHECK(plain(seq).to_vector() != stepped);
}

namespace {

// A cell that records what step_dropped receives: the state as carried and the mask, separately.
class MaskProbeCell : public Cell {
 public:
  MaskProbeCell(std::size_t input, std::size_t hidden) : m_input(input), m_hidden(hidden) {
    register_parameter("w", Tensor::zeros({1}, float64));
  }
  std::pair<Tensor, State> step(const Tensor& x, const State& state) override {
    check_step(x, state, 1);
    ++plain_steps;
    return {state[0] + 1.0, {state[0] + 1.0}};
  }
  std::pair<Tensor, State> step_dropped(const Tensor& x, const State& state, const Tensor& h_mask) override {
    check_step(x, state, 1);
    hs.push_back(state[0].to_vector());
    masks.push_back(h_mask.to_vector());
    return {state[0] + 1.0, {state[0] + 1.0}};  // h counts the steps: the carried h is never masked
  }
  State initial_state(std::size_t batch) const override { return {Tensor::zeros(column_shape(m_hidden, batch), float64)}; }
  std::size_t input_size() const override { return m_input; }
  std::size_t output_size() const override { return m_hidden; }
  std::string repr() const override { return "MaskProbeCell"; }

  std::vector<std::vector<double>> hs, masks;
  int plain_steps = 0;

 private:
  std::size_t m_input, m_hidden;
};

}  // namespace

TEST_CASE("variational dropout: each step goes through the cell's step_dropped with the unmasked state and m_h") {
  for (bool stepping : {false, true}) {
    INFO("stepping " << stepping);
    auto probe = std::make_shared<MaskProbeCell>(3, 6);
    Generator g(21);
    Recurrent r({probe}, {.recurrent_dropout = 0.5}, g);
    const std::size_t T = 4, batch = 5;
    if (stepping)
      for (std::size_t t = 0; t < T; ++t) r(Tensor::ones({3, batch}, float64));
    else
      r(std::vector<Tensor>(T, Tensor::ones({3, batch}, float64)));
    REQUIRE(probe->hs.size() == T);
    CHECK(probe->plain_steps == 0);
    check_is_mask(probe->masks[0], 0.5);
    for (std::size_t t = 0; t < T; ++t) {
      CHECK(probe->masks[t] == probe->masks[0]);
      CHECK(probe->hs[t] == std::vector<double>(6 * batch, static_cast<double>(t)));  // the carried h, unmasked
    }
  }
}

TEST_CASE("variational dropout: a GRU keeps the unmasked h in its update, as Keras' GRU (recurrent products masked)") {
  // h1 and h2 differ only where the mask is 0: the recurrent products see the same m ⊙ h, so the gates
  // are equal, and h' = (1 − z) ⊙ n + z ⊙ h differs exactly there, by z ⊙ (h1 − h2) ≠ 0.
  Generator gen(4);
  const std::size_t H = 5, B = 3;
  const Tensor x = Tensor::uniform({4, B}, -1, 1, gen, float64);
  std::vector<double> m(H * B), a(H * B), b(H * B);
  for (std::size_t i = 0; i < H * B; ++i) {
    m[i] = i % 3 == 0 ? 0.0 : 2.0;
    a[i] = gen.uniform() - 0.5;
    b[i] = m[i] == 0.0 ? a[i] + 0.7 : a[i];
  }
  const Tensor mask = Tensor::from_vector(m, {H, B}, float64), h1 = Tensor::from_vector(a, {H, B}, float64),
               h2 = Tensor::from_vector(b, {H, B}, float64);
  Generator g1(9), g2(9), g3(9);
  GRUCell gru(4, H, {.dtype = float64}, g1);
  GRUCell gru_before(4, H, {.reset_after = false, .dtype = float64}, g2);
  LayerNormGRUCell ln(4, H, {.dtype = float64}, g3);
  for (Cell* c : std::initializer_list<Cell*>{&gru, &gru_before, &ln}) {
    INFO(c->repr());
    const std::vector<double> r1 = c->step_dropped(x, {h1}, mask).first.to_vector();
    const std::vector<double> r2 = c->step_dropped(x, {h2}, mask).first.to_vector();
    for (std::size_t i = 0; i < H * B; ++i) {
      if (m[i] == 0.0) {
        CHECK(r1[i] - r2[i] < -1e-3);  // z ⊙ (h1 − h2), z in (0, 1), h1 − h2 = −0.7
        CHECK(r1[i] - r2[i] > -0.7);
      } else {
        CHECK(r1[i] == doctest::Approx(r2[i]).epsilon(1e-14));
      }
    }
    // An all-ones mask is the plain step.
    CHECK(c->step_dropped(x, {h1}, Tensor::ones({H, B}, float64)).first.to_vector() == c->step(x, {h1}).first.to_vector());
  }
  // The reset-after GRU against its formula with m ⊙ h in the products and h in the update.
  const Tensor hm = h1 * mask;
  auto rows = [](const Tensor& t, std::size_t k) { return slice(t, 0, k * 5, (k + 1) * 5); };
  const Tensor gx = matmul(gru.weight_ih, x) + reshape(gru.bias_ih, {15, 1});
  const Tensor gh = matmul(gru.weight_hh, hm) + reshape(gru.bias_hh, {15, 1});
  const Tensor r = sigmoid(rows(gx, 0) + rows(gh, 0)), z = sigmoid(rows(gx, 1) + rows(gh, 1));
  const Tensor n = tanh(rows(gx, 2) + r * rows(gh, 2));
  const std::vector<double> want = ((1.0 - z) * n + z * h1).to_vector(), got = gru.step_dropped(x, {h1}, mask).first.to_vector();
  for (std::size_t i = 0; i < want.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-14));
}

TEST_CASE("variational dropout: a recurrent dropout mask of the wrong shape is refused, naming the cell") {
  Generator g(2);
  Recur lstm(LSTMCell(3, 4, {.dtype = float64}, g));
  Recur gru(GRUCell(3, 4, {.dtype = float64}, g));
  const Tensor x = Tensor::ones({3, 2}, float64);
  for (Recur* r : {&lstm, &gru}) {
    INFO(r->repr());
    const std::string msg = message_of<ShapeError>([&] { r->step_dropped(x, Tensor::ones({4, 3}, float64)); });
    CHECK(contains(msg, "Cell(3 => 4"));
    CHECK(contains(msg, "(4, 3)"));
    CHECK(r->state().empty());  // the refused step carried nothing on
    const Tensor y = r->step_dropped(x, Tensor::ones({4, 2}, float64));
    CHECK(y.shape() == Shape{4, 2});
    CHECK_THROWS_AS(r->step_dropped(Tensor::ones({2, 3, 2}, float64), Tensor::ones({4, 2}, float64)), ShapeError);
  }
}
