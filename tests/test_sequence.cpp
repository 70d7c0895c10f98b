// Whole sequences: the runner (any cell, masks, reverse), Recurrent (stacked, bidirectional, dropout
// between layers, return_sequences, final states, stateful stepping), TimeDistributed, and a user's
// own cell plugged into all of it. Gradients by float64 central differences through 3 unrolled steps
// under two losses (last output; weighted sum of all outputs), w.r.t. weights, inputs and initial
// states. Small sizes (hidden 3, batch 2–3, time 3) keep the file fast.
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <rewind.hpp>

using namespace rwd;

namespace {

// The seeds' LayerNorm simple-RNN cell, written here as a user would, from primitives and LayerNorm:
//   h_t = tanh(LayerNorm(W_x x_t + W_h h_{t−1})),   y_t = h_t
// Nothing else is needed for Recur, run_sequence and Recurrent to take it.
class LayerNormRNNCell : public Cell {
 public:
  LayerNormRNNCell(std::size_t input, std::size_t hidden, Generator& gen) : m_input(input), m_hidden(hidden) {
    W_x = register_parameter("W_x", init::uniform_fan_in({hidden, input}, hidden, gen, float64));
    W_h = register_parameter("W_h", init::uniform_fan_in({hidden, hidden}, hidden, gen, float64));
    norm = register_module("norm", std::make_shared<LayerNorm>(hidden, 1e-5, true, float64));
  }
  std::pair<Tensor, State> step(const Tensor& x, const State& state) override {
    check_step(x, state, 1);
    Tensor h = tanh((*norm)(matmul(W_x, x) + matmul(W_h, state[0])));
    return {h, {h}};
  }
  State initial_state(std::size_t batch) const override { return {Tensor::zeros({m_hidden, batch}, float64)}; }
  std::size_t input_size() const override { return m_input; }
  std::size_t output_size() const override { return m_hidden; }
  std::string repr() const override {
    return "LayerNormRNNCell(" + std::to_string(m_input) + " => " + std::to_string(m_hidden) + ")";
  }

  Tensor W_x, W_h;
  std::shared_ptr<LayerNorm> norm;

 private:
  std::size_t m_input, m_hidden;
};

// Every parameter gets distinct nonzero values (peepholes, learned states and LayerNorm start constant).
void randomize(Module& m, Generator& gen) {
  for (auto& [k, p] : m.named_parameters()) p.assign(Tensor::uniform(p.shape(), -0.8, 0.8, gen, p.dtype()));
}

std::vector<Tensor> make_steps(std::size_t T, std::size_t F, std::size_t B, Generator& gen, bool grad = true) {
  std::vector<Tensor> xs;
  for (std::size_t t = 0; t < T; ++t) {
    std::string name = "x";  // not "x" + to_string(t): GCC 12 reports a false -Wrestrict for that
    name += std::to_string(t);
    Tensor x = Tensor::uniform({F, B}, -1, 1, gen, float64).set_name(name);
    if (grad) x.set_requires_grad();
    xs.push_back(x);
  }
  return xs;
}

// Random initial states, one State per layer and direction, requiring gradients.
std::vector<State> make_initial(const Recurrent& m, std::size_t B, Generator& gen) {
  std::vector<State> init;
  for (std::size_t l = 0; l < m.num_layers(); ++l)
    for (std::size_t d = 0; d < m.directions(); ++d) {
      Cell& c = m.cell(l, d == 1);
      State s;
      for (std::size_t k = 0; k < c.initial_state(B).size(); ++k)
        s.push_back(Tensor::uniform({c.output_size(), B}, -0.5, 0.5, gen, float64)
                        .set_requires_grad()
                        .set_name("s0_l" + std::to_string(l) + (d ? "r_" : "_") + std::to_string(k)));
      init.push_back(s);
    }
  return init;
}

enum class Loss { last, all };

// gradcheck of the whole sequence w.r.t. every parameter, every step and every initial state, under
// both losses (gradcheck scalarizes a tensor output with fixed asymmetric weights).
void check_recurrent(Recurrent& m, std::size_t B, const Tensor& mask = {}, bool learned_initial = false) {
  Generator gen(23);
  randomize(m, gen);
  m.eval();
  const std::vector<Tensor> xs = make_steps(3, m.input_size(), B, gen);
  const std::vector<State> init = learned_initial ? std::vector<State>{} : make_initial(m, B, gen);
  std::vector<Tensor> inputs;
  for (auto& [k, p] : m.named_parameters()) inputs.push_back(p.set_name(k));
  inputs.insert(inputs.end(), xs.begin(), xs.end());
  for (const State& s : init) inputs.insert(inputs.end(), s.begin(), s.end());
  for (Loss loss : {Loss::last, Loss::all}) {
    auto f = [&](const std::vector<Tensor>&) {
      RecurrentRun r = m.run(xs, mask, init);
      return loss == Loss::last ? r.last : stack_steps(r.outputs);
    };
    GradcheckReport report = gradcheck(f, inputs);
    CHECK_MESSAGE(report.ok(), m.repr() << std::string(mask.defined() ? ", masked" : "") << std::string(loss == Loss::last ? ", last output" : ", all outputs")
                                        << "\n" << report.str());
  }
}

std::vector<double> values(const Tensor& t) { return t.to_vector(); }

void check_close(const Tensor& a, const Tensor& b, double tol, const std::string& what) {
  REQUIRE_MESSAGE(a.shape() == b.shape(), what << ": " << a.shape() << " vs " << b.shape());
  const std::vector<double> x = a.to_vector(), y = b.to_vector();
  double worst = 0;
  for (std::size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(x[i] - y[i]));
  CHECK_MESSAGE(worst <= tol, what << ": max abs diff " << worst);
}

// Column b of a (features, batch) tensor as (features, 1).
Tensor column(const Tensor& x, std::size_t b) { return slice(x, 1, b, b + 1); }
// Rows [lo, hi) of a (features, batch) tensor.
Tensor rows(const Tensor& x, std::size_t lo, std::size_t hi) { return slice(x, 0, lo, hi); }

}  // namespace

TEST_CASE("sequence: run_sequence is the time loop of any cell — equal to stepping by hand, forward and reversed") {
  Generator gen(1);
  LSTMCell cell(2, 3, {.dtype = float64}, gen);
  const std::vector<Tensor> xs = make_steps(4, 2, 2, gen, false);
  const State s0 = {Tensor::uniform({3, 2}, -0.5, 0.5, gen, float64), Tensor::uniform({3, 2}, -0.5, 0.5, gen, float64)};
  for (bool reverse : {false, true}) {
    SequenceRun run = run_sequence(cell, xs, s0, {}, reverse);
    State s = s0;
    for (std::size_t k = 0; k < 4; ++k) {
      const std::size_t t = reverse ? 3 - k : k;
      auto [y, next] = cell.step(xs[t], s);
      CHECK(values(run.outputs[t]) == values(y));
      s = next;
    }
    CHECK(values(run.final_state[0]) == values(s[0]));
    CHECK(values(run.final_state[1]) == values(s[1]));
    CHECK(values(run.last) == values(run.outputs[reverse ? 0 : 3]));
    // The (time, features, batch) form is the same run.
    SequenceRun again = run_sequence(cell, stack_steps(xs), s0, {}, reverse);
    for (std::size_t t = 0; t < 4; ++t) CHECK(values(again.outputs[t]) == values(run.outputs[t]));
  }
  // Without an initial state, the cell's own (zeros) is used.
  SequenceRun fresh = run_sequence(cell, xs);
  CHECK(values(fresh.outputs[0]) == values(cell.step(xs[0], cell.initial_state(2)).first));
}

TEST_CASE("sequence: gradients through 3 steps w.r.t. weights, inputs and initial states (two losses)") {
  Generator gen(2);
  SUBCASE("stacked LSTM, 2 layers") {
    Recurrent m = LSTM(2, 3, {.dtype = float64}, {.num_layers = 2}, gen);
    check_recurrent(m, 2);
  }
  SUBCASE("bidirectional GRU, merged by concat") {
    Recurrent m = GRU(2, 3, {.dtype = float64}, {.bidirectional = true}, gen);
    check_recurrent(m, 2);
  }
  SUBCASE("bidirectional LSTM, merged by sum") {
    Recurrent m = LSTM(2, 3, {.dtype = float64}, {.bidirectional = true, .merge = Merge::sum}, gen);
    check_recurrent(m, 2);
  }
  SUBCASE("stacked bidirectional LSTM over a masked variable-length batch (lengths 3, 1)") {
    Recurrent m = LSTM(2, 3, {.dtype = float64}, {.num_layers = 2, .bidirectional = true}, gen);
    check_recurrent(m, 2, mask_from_lengths({3, 1}, 3, float64));
  }
  SUBCASE("masked GRU, lengths 2, 3, 1") {
    Recurrent m = GRU(2, 3, {.dtype = float64}, {}, gen);
    check_recurrent(m, 3, mask_from_lengths({2, 3, 1}, 3, float64));
  }
  SUBCASE("relu RNN, 2 layers") {
    Recurrent m = RNN(2, 3, "relu", {.dtype = float64}, {.num_layers = 2}, gen);
    check_recurrent(m, 2);
  }
  SUBCASE("GRU, reset after (PyTorch) and before (Cho et al.)") {
    for (bool after : {true, false}) {
      Recurrent m = GRU(2, 3, {.reset_after = after, .dtype = float64}, {}, gen);
      check_recurrent(m, 2);
    }
  }
  SUBCASE("LSTM with peepholes") {
    Recurrent m = LSTM(2, 3, {.peephole = true, .dtype = float64}, {}, gen);
    check_recurrent(m, 2);
  }
  SUBCASE("learned initial states, 2 layers, masked") {
    Recurrent m = LSTM(2, 3, {.learn_initial_state = true, .dtype = float64}, {.num_layers = 2}, gen);
    check_recurrent(m, 2, mask_from_lengths({2, 3}, 3, float64), true);
  }
}

TEST_CASE("sequence: padded steps change neither the valid outputs nor any gradient") {
  Generator gen(3);
  Recurrent m = LSTM(2, 3, {.dtype = float64}, {.num_layers = 2, .bidirectional = true}, gen);
  randomize(m, gen);
  const std::vector<std::size_t> lengths = {3, 1, 2};
  const Tensor mask = mask_from_lengths(lengths, 3, float64);
  const std::vector<State> init = make_initial(m, 3, gen);
  const Tensor w_all = Tensor::uniform({3, 6, 3}, -1, 1, gen, float64), w_last = Tensor::uniform({6, 3}, -1, 1, gen, float64);

  struct Result {
    std::vector<double> outputs, last;
    std::vector<std::vector<double>> grads;
  };
  auto run = [&](const std::vector<Tensor>& xs) {
    m.zero_grad(true);
    for (const State& s : init)
      for (Tensor t : s) t.zero_grad(true);  // a handle: zeroes the shared gradient
    RecurrentRun r = m.run(xs, mask, init);
    Tensor all = stack_steps(r.outputs);
    Result res{values(all), values(r.last), {}};
    (sum(all * w_all) + sum(r.last * w_last) + sum(r.final_states[2][1])).backward();
    for (const Tensor& p : m.parameters()) res.grads.push_back(values(p.grad()));
    for (const State& s : init)
      for (const Tensor& t : s) res.grads.push_back(values(t.grad()));
    for (std::size_t t = 0; t < 3; ++t) {
      // The input gradient at valid positions must match; at padded positions it must be exactly 0.
      std::vector<double> g = values(xs[t].grad());
      for (std::size_t b = 0; b < 3; ++b)
        if (t >= lengths[b])
          for (std::size_t f = 0; f < 2; ++f) CHECK(g[f * 3 + b] == 0.0);
      res.grads.push_back(g);
    }
    return res;
  };
  const std::vector<Tensor> xs = make_steps(3, 2, 3, gen);
  std::vector<Tensor> junk;
  for (std::size_t t = 0; t < 3; ++t) {
    std::vector<double> v = values(xs[t]);
    for (std::size_t b = 0; b < 3; ++b)
      if (t >= lengths[b])
        for (std::size_t f = 0; f < 2; ++f) v[f * 3 + b] = 7.0 * gen.normal();  // new values at padding only
    junk.push_back(Tensor::from_vector(v, {2, 3}, float64).set_requires_grad());
  }
  const Result a = run(xs), b = run(junk);
  CHECK(a.outputs == b.outputs);
  CHECK(a.last == b.last);
  REQUIRE(a.grads.size() == b.grads.size());
  for (std::size_t i = 0; i < a.grads.size(); ++i) CHECK(a.grads[i] == b.grads[i]);
  // And the padded outputs are zeros.
  for (std::size_t t = 0; t < 3; ++t)
    for (std::size_t bb = 0; bb < 3; ++bb)
      if (t >= lengths[bb])
        for (std::size_t f = 0; f < 6; ++f) CHECK(a.outputs[(t * 6 + f) * 3 + bb] == 0.0);
}

TEST_CASE("sequence: the masked last output and final states equal each sequence run alone, unpadded") {
  Generator gen(4);
  const std::vector<std::size_t> lengths = {3, 1, 2};
  auto check = [&](Recurrent& m) {
    randomize(m, gen);
    const std::vector<Tensor> xs = make_steps(3, 2, 3, gen, false);
    RecurrentRun batched = m.run(xs, mask_from_lengths(lengths, 3, float64));
    for (std::size_t b = 0; b < 3; ++b) {
      std::vector<Tensor> own;  // sequence b alone: its own length, batch 1, no mask
      for (std::size_t t = 0; t < lengths[b]; ++t) own.push_back(column(xs[t], b));
      RecurrentRun alone = m.run(own);
      const std::string what = m.repr() + ", sequence " + std::to_string(b);
      check_close(column(batched.last, b), alone.last, 1e-12, what + ": last output");
      for (std::size_t t = 0; t < lengths[b]; ++t) check_close(column(batched.outputs[t], b), alone.outputs[t], 1e-12, what + ": output");
      for (std::size_t i = 0; i < alone.final_states.size(); ++i)
        for (std::size_t k = 0; k < alone.final_states[i].size(); ++k)
          check_close(column(batched.final_states[i][k], b), alone.final_states[i][k], 1e-12, what + ": final state");
    }
  };
  SUBCASE("stacked bidirectional LSTM") {
    Recurrent m = LSTM(2, 3, {.dtype = float64}, {.num_layers = 2, .bidirectional = true}, gen);
    check(m);
  }
  SUBCASE("GRU") {
    Recurrent m = GRU(2, 3, {.dtype = float64}, {}, gen);
    check(m);
  }
}

TEST_CASE("sequence: return_sequences gives every output or only the last") {
  Generator gen(5);
  const Tensor seq = Tensor::uniform({4, 2, 5}, -1, 1, gen, float64);
  for (bool bidir : {false, true}) {
    Recurrent all = LSTM(2, 3, {.dtype = float64}, {.bidirectional = bidir}, gen);
    Recurrent last = LSTM(2, 3, {.dtype = float64}, {.bidirectional = bidir, .return_sequences = false}, gen);
    last.load_state_dict(all.state_dict());
    const Tensor ys = all(seq), y = last(seq);
    const std::size_t D = bidir ? 2 : 1;
    CHECK(ys.shape() == Shape{4, 3 * D, 5});
    CHECK(y.shape() == Shape{3 * D, 5});
    // Forward half: the output at the last step; reverse half: at the first step (where it finishes).
    CHECK(values(rows(y, 0, 3)) == values(rows(squeeze(slice(ys, 0, 3, 4), 0), 0, 3)));
    if (bidir) CHECK(values(rows(y, 3, 6)) == values(rows(squeeze(slice(ys, 0, 0, 1), 0), 3, 6)));
  }
}

TEST_CASE("sequence: stacking, merging and final states, against the cells run by hand") {
  Generator gen(6);
  const std::size_t T = 3, B = 2, H = 3;
  const std::vector<Tensor> xs = make_steps(T, 2, B, gen, false);
  for (Merge merge : {Merge::concat, Merge::sum}) {
    Recurrent m = LSTM(2, H, {.dtype = float64}, {.num_layers = 2, .bidirectional = true, .merge = merge}, gen);
    RecurrentRun r = m.run(xs);
    // Layer 0 forward and reversed, merged step by step, feeds layer 1.
    SequenceRun f0 = run_sequence(m.cell(0), xs), r0 = run_sequence(m.cell(0, true), xs, {}, {}, true);
    std::vector<Tensor> mid;
    for (std::size_t t = 0; t < T; ++t)
      mid.push_back(merge == Merge::concat ? concat({f0.outputs[t], r0.outputs[t]}, 0) : f0.outputs[t] + r0.outputs[t]);
    SequenceRun f1 = run_sequence(m.cell(1), mid), r1 = run_sequence(m.cell(1, true), mid, {}, {}, true);
    for (std::size_t t = 0; t < T; ++t) {
      const Tensor want = merge == Merge::concat ? concat({f1.outputs[t], r1.outputs[t]}, 0) : f1.outputs[t] + r1.outputs[t];
      CHECK(values(r.outputs[t]) == values(want));
    }
    REQUIRE(m.final_states().size() == 4);
    const SequenceRun* by_index[] = {&f0, &r0, &f1, &r1};
    for (std::size_t i = 0; i < 4; ++i)
      for (std::size_t k = 0; k < 2; ++k) CHECK(values(m.final_states()[i][k]) == values(by_index[i]->final_state[k]));
    CHECK(values(m.final_state(1, true)[0]) == values(r1.outputs[0]));  // the reverse direction ends at t = 0
    CHECK(values(m.final_state(1)[0]) == values(f1.outputs[T - 1]));
    CHECK(m.output_size() == (merge == Merge::concat ? 2 * H : H));
  }
}

TEST_CASE("sequence: the final state is readable after backward clears the tape") {
  Generator gen(7);
  Recurrent m = GRU(2, 3, {.dtype = float64}, {.num_layers = 2}, gen);
  Tensor seq = Tensor::uniform({3, 2, 2}, -1, 1, gen, float64);
  sum(m(seq)).backward();
  CHECK(m.final_state(1)[0].is_leaf());
  CHECK(m.final_state(1)[0].shape() == Shape{3, 2});
  CHECK_THROWS_AS(m.final_state(2), ValueError);
}

TEST_CASE("sequence: dropout between stacked layers, in training mode only") {
  Generator gen(8);
  const Tensor seq = Tensor::uniform({3, 2, 4}, -1, 1, gen, float64);
  auto make = [](std::size_t layers) {
    Generator gen(9);
    return LSTM(2, 3, {.dtype = float64}, {.num_layers = layers, .dropout = 0.5}, gen);
  };
  Recurrent m = make(2);
  CHECK(m.repr() == "LSTM(2 => 3, layers=2, dropout=0.5)");
  m.eval();
  const std::vector<double> evaluated = values(m(seq));
  const std::vector<double> layer0_eval = values(m.final_state(0)[1]), layer1_eval = values(m.final_state(1)[1]);
  // In evaluation the stack is the two cells run one after the other, untouched.
  CHECK(evaluated == values(stack_steps(run_sequence(m.cell(1), run_sequence(m.cell(0), seq).outputs).outputs)));
  m.train();
  const std::vector<double> trained = values(m(seq));
  CHECK(trained != evaluated);
  CHECK(values(m.final_state(0)[1]) == layer0_eval);  // layer 0 itself is not dropped out: only its outputs, on the way up
  CHECK(values(m.final_state(1)[1]) != layer1_eval);
  // Seeded: the same construction draws the same masks.
  Recurrent twin = make(2);
  CHECK(values(twin(seq)) == trained);
  // No dropout after the last layer: on one layer `dropout` would do nothing, so it is refused.
  CHECK_THROWS_AS(make(1), ValueError);
}

TEST_CASE("sequence: TimeDistributed applies a layer to every step in one call") {
  Generator gen(10);
  auto dense = std::make_shared<Dense>(3, 2, "tanh", true, float64, gen);
  randomize(*dense, gen);
  TimeDistributed td(dense);
  CHECK(td.repr() == "TimeDistributed(Dense(3 => 2, tanh))");
  Tensor seq = Tensor::uniform({4, 3, 5}, -1, 1, gen, float64).set_requires_grad().set_name("seq");
  const Tensor y = td(seq);
  REQUIRE(y.shape() == Shape{4, 2, 5});
  for (std::size_t t = 0; t < 4; ++t)
    check_close(squeeze(slice(y, 0, t, t + 1), 0), (*dense)(squeeze(slice(seq, 0, t, t + 1), 0)), 1e-14,
                "step " + std::to_string(t));
  std::vector<Tensor> inputs = {dense->weight.set_name("weight"), dense->bias.set_name("bias"), seq};
  GradcheckReport report = gradcheck([&](const std::vector<Tensor>&) { return td(seq); }, inputs);
  CHECK_MESSAGE(report.ok(), report.str());
  // Behind a sequence layer, a whole model over (time, features, batch):
  Chain model(LSTM(3, 4, {.dtype = float64}, {}, gen), TimeDistributed(Dense(4, 2, {}, true, float64, gen)));
  CHECK(model(seq).shape() == Shape{4, 2, 5});
  CHECK(model.repr() == "Chain(LSTM(3 => 4), TimeDistributed(Dense(4 => 2)))");
}

TEST_CASE("sequence: stepping a Recurrent one call at a time is stateful like Recur") {
  Generator gen(11);
  Recurrent m = GRU(2, 3, {.dtype = float64}, {.num_layers = 2}, gen);
  const Tensor seq = Tensor::uniform({4, 2, 3}, -1, 1, gen, float64);
  const Tensor whole = m(seq);  // a whole sequence does not touch the step state
  for (int pass = 0; pass < 2; ++pass) {
    for (std::size_t t = 0; t < 4; ++t)
      CHECK(values(m(squeeze(slice(seq, 0, t, t + 1), 0))) == values(squeeze(slice(whole, 0, t, t + 1), 0)));
    reset(m);  // the second pass starts afresh and must give the same outputs
  }
  // After backward the carried state keeps its value, not its history.
  Tensor x = squeeze(slice(seq, 0, 0, 1), 0);
  sum(m(x)).backward();
  CHECK(m.layer(1).state()[0].is_leaf());
  CHECK(m.final_state(1)[0].shape() == Shape{3, 3});
  CHECK_THROWS_WITH_AS(m(Tensor::zeros({2, 5}, float64)),
                       "GRU(2 => 3, layers=2): input (2, 5) has batch 5 but the carried state (3, 3) has batch 3; "
                       "call reset() before feeding a batch of another size",
                       ShapeError);
  // reset_rows and detach_state reach every layer of the stack (they are Recurs inside).
  reset_rows(m, {false, true, false});
  for (std::size_t l = 0; l < 2; ++l)
    for (std::size_t j = 0; j < 3; ++j) CHECK(m.layer(l).state()[0].at({j, 1}) == 0.0);
  CHECK(m.layer(1).state()[0].at({0, 0}) != 0.0);
  detach_state(m);
  CHECK(m.layer(0).state()[0].is_leaf());
  Recurrent bi = LSTM(2, 3, {}, {.bidirectional = true}, gen);
  CHECK_THROWS_WITH_AS(bi(Tensor::zeros({2, 5})),
                       "LSTM(2 => 3, bidirectional): a bidirectional layer cannot run one step at a time — its reverse "
                       "direction starts from the end of the sequence; pass the whole sequence, (time, features, batch) "
                       "or a vector of steps",
                       ValueError);
}

TEST_CASE("sequence: a user's LayerNorm RNN cell plugs into Recur, run_sequence and Recurrent unchanged") {
  Generator gen(12);
  auto cell = std::make_shared<LayerNormRNNCell>(2, 3, gen);
  randomize(*cell, gen);
  const std::vector<Tensor> xs = make_steps(3, 2, 2, gen, false);
  SequenceRun run = run_sequence(*cell, xs);
  Recur r(cell);
  for (std::size_t t = 0; t < 3; ++t) CHECK(values(r(xs[t])) == values(run.outputs[t]));

  SUBCASE("stacked, from a factory: gradients through 3 steps") {
    Recurrent m(2, [&](std::size_t in, std::size_t) { return std::make_shared<LayerNormRNNCell>(in, 3, gen); },
                {.num_layers = 2});
    CHECK(m.repr() == "LayerNormRNN(2 => 3, layers=2)");
    CHECK(m.named_parameters()[0].first == "layer0.cell.W_x");
    check_recurrent(m, 2);
  }
  SUBCASE("bidirectional, from a vector of cells, masked: gradients through 3 steps") {
    Recurrent m({std::make_shared<LayerNormRNNCell>(2, 3, gen), std::make_shared<LayerNormRNNCell>(2, 3, gen)},
                {.bidirectional = true});
    CHECK(m.repr() == "LayerNormRNN(2 => 3, bidirectional)");
    check_recurrent(m, 2, mask_from_lengths({3, 2}, 3, float64));
  }
  SUBCASE("the vector of cells must stack") {
    CHECK_THROWS_WITH_AS(Recurrent({std::make_shared<LayerNormRNNCell>(2, 3, gen), std::make_shared<LayerNormRNNCell>(2, 3, gen)}),
                         "Recurrent: layer 1: LayerNormRNNCell(2 => 3) takes 2 features but the layer below outputs 3",
                         ShapeError);
  }
}

TEST_CASE("sequence: repr, parameter names and sizes") {
  Generator gen(13);
  CHECK(LSTM(32, 256, {}, {.num_layers = 2, .bidirectional = true}, gen).repr() == "LSTM(32 => 256, layers=2, bidirectional)");
  CHECK(RNN(2, 5).repr() == "RNN(2 => 5, tanh)");
  CHECK(RNN(2, 5, "relu", {}, {.num_layers = 3}).repr() == "RNN(2 => 5, relu, layers=3)");
  CHECK(GRU(3, 4, {.reset_after = false}, {.bidirectional = true, .merge = Merge::sum}).repr() ==
        "GRU(3 => 4, reset_before, bidirectional, merge=sum)");
  CHECK(LSTM(3, 4, {.peephole = true}, {.return_sequences = false}).repr() == "LSTM(3 => 4, peephole, return_sequences=false)");

  Recurrent m = LSTM(2, 3, {}, {.num_layers = 2, .bidirectional = true}, gen);
  std::vector<std::string> keys;
  for (auto& [k, p] : m.named_parameters()) keys.push_back(k);
  REQUIRE(keys.size() == 16);
  CHECK(keys[0] == "layer0.cell.weight_ih");
  CHECK(keys[4] == "layer0_reverse.cell.weight_ih");
  CHECK(keys[15] == "layer1_reverse.cell.bias_hh");
  CHECK(m.cell(1).input_size() == 6);
  Recurrent s = LSTM(2, 3, {}, {.num_layers = 2, .bidirectional = true, .merge = Merge::sum}, gen);
  CHECK(s.cell(1).input_size() == 3);
  CHECK(s.output_size() == 3);
}

TEST_CASE("sequence: masks, and errors that name the layer and the sizes") {
  CHECK(values(mask_from_lengths({2, 0, 3})) == std::vector<double>{1, 0, 1, 1, 0, 1, 0, 0, 1});
  CHECK(mask_from_lengths({1, 2}, 4).shape() == Shape{4, 2});
  CHECK_THROWS_WITH_AS(mask_from_lengths({5}, 3), "mask_from_lengths: a length of 5 does not fit in 3 steps", ValueError);

  Recurrent m = LSTM(2, 3);
  CHECK_THROWS_WITH_AS(m(Tensor::zeros({4, 5, 6})), "LSTM(2 => 3): sequence (4, 5, 6): expected (time, 2, batch)", ShapeError);
  CHECK_THROWS_WITH_AS(m(Tensor::zeros({4, 2, 6}), Tensor::ones({3, 6})),
                       "LSTM(2 => 3): mask (3, 6) does not fit 4 steps of batch 6: expected (4, 6) — (time, batch), 1 at "
                       "real steps and 0 at padding",
                       ShapeError);
  CHECK_THROWS_WITH_AS(m(Tensor::zeros({4, 2, 6}), Tensor(), {State{}, State{}}),
                       "LSTM(2 => 3): got 2 initial states; expected one per layer and direction (1), or none", ValueError);
  CHECK_THROWS_WITH_AS(m(std::vector<Tensor>{Tensor::zeros({2, 6}), Tensor::zeros({2, 5})}),
                       "run_sequence: LSTMCell(2 => 3): step 1 is (2, 5) but step 0 is (2, 6): every step must have the same shape",
                       ShapeError);
}

TEST_CASE("sequence: split_steps and stack_steps round-trip, gradient included (short and long sequences)") {
  Generator gen(14);
  // Past 8 steps a recorded sequence is cut in a tree of slices (to keep the backward near-linear in
  // time); every step and the gradient must be as if cut one by one.
  for (std::size_t T : {3, 9, 70}) {
    Tensor seq = Tensor::uniform({T, 2, 3}, -1, 1, gen, float64).set_requires_grad();
    const Tensor w = Tensor::uniform({T, 2, 3}, -1, 1, gen, float64);
    const std::vector<Tensor> steps = split_steps(seq);
    REQUIRE(steps.size() == T);
    for (std::size_t t = 0; t < T; ++t) CHECK(values(steps[t]) == values(squeeze(slice(seq.detach(), 0, t, t + 1), 0)));
    sum(stack_steps(steps) * w).backward();
    CHECK(values(seq.grad()) == values(w));
  }
}

// A user's cell derived from LSTMCell or RNNCell that overrides step(): the sequence runner must step
// it through that step, not through the built-in cell's projected path (which would skip the override).
namespace {
struct HalvedLSTM : LSTMCell {
  using LSTMCell::LSTMCell;
  std::pair<Tensor, State> step(const Tensor& x, const State& state) override {
    auto [h, next] = LSTMCell::step(x, state);
    const Tensor half = h * Tensor::scalar(0.5, float64);
    return {half, {half, next[1]}};
  }
};
struct ShiftedRNN : RNNCell {
  using RNNCell::RNNCell;
  std::pair<Tensor, State> step(const Tensor& x, const State& state) override {
    auto [h, next] = RNNCell::step(x, state);
    const Tensor y = h + Tensor::scalar(1.0, float64);
    return {y, {y}};
  }
};

template <class C>
void check_own_step(C& cell, const Tensor& seq) {
  CHECK_FALSE(cell.projects_input());
  const SequenceRun run = run_sequence(cell, seq);
  const std::vector<Tensor> steps = split_steps(seq);
  State s = cell.initial_state(seq.dim(2));
  for (std::size_t t = 0; t < steps.size(); ++t) {
    auto [y, next] = cell.step(steps[t], s);
    CHECK(run.outputs[t].to_vector() == y.to_vector());
    s = next;
  }
}
}  // namespace

TEST_CASE("sequence: a cell derived from LSTMCell or RNNCell is stepped through its own step()") {
  Generator gen(16);
  // 32 inputs × a batch of 16: large enough for the runner to project the inputs of a built-in cell.
  const Tensor seq = Tensor::uniform({5, 32, 16}, -1, 1, gen, float64);
  HalvedLSTM lstm(32, 4, {.dtype = float64}, gen);
  ShiftedRNN rnn(32, 4, "tanh", {.dtype = float64}, gen);
  check_own_step(lstm, seq);
  check_own_step(rnn, seq);
  // The cells themselves still project their inputs.
  CHECK(LSTMCell(3, 4, {}, gen).projects_input());
  CHECK(RNNCell(3, 4, "tanh", {}, gen).projects_input());
}
