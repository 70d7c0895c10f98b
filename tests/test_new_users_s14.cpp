// What new users coming from Flux, Keras and PyTorch ran into (session 14): each case is the smallest
// program that showed it, with the behaviour those libraries (and rewind's own docs) promise.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include <rewind.hpp>

#include "support.hpp"

using namespace rwd;

// Keras' Embedding → masked RNN, put in a model of its own and nested in the classifier's Chain (a
// PyTorch user's `self.encoder`): the outer Chain held every mask-taking layer to receive a
// (time, features, batch) sequence, so the inner Chain — which receives the ids (time, batch) for its
// own Embedding — was refused with "mask (5, 2) does not fit the sequence (5, 2)".
TEST_CASE("new users s14: a nested Chain that starts with an Embedding takes the mask") {
  Generator gen(1);
  auto encoder = std::make_shared<Chain>(Embedding(9, 4, float64, gen),
                                         GRU(4, 3, {.dtype = float64}, {.return_sequences = false}, gen));
  Chain model(encoder, Dense(3, 2, {}, true, float64, gen));
  const std::vector<std::vector<double>> seqs{{1, 2, 3, 4, 5}, {6, 7, 8}};
  std::vector<double> ids(5 * 2, 0.0);
  for (std::size_t b = 0; b < 2; ++b)
    for (std::size_t t = 0; t < seqs[b].size(); ++t) ids[t * 2 + b] = seqs[b][t];
  const Tensor logits = model(Tensor::from_vector(ids, {5, 2}, float64), mask_from_lengths({5, 3}, 5, float64));
  REQUIRE(logits.shape() == Shape{2, 2});
  for (std::size_t b = 0; b < 2; ++b) {  // each column is its sequence alone
    const Tensor alone = model(Tensor::from_vector(seqs[b], {seqs[b].size(), 1}, float64));
    for (std::size_t k = 0; k < 2; ++k) CHECK(logits.at({k, b}) == doctest::Approx(alone.at({k, 0})).epsilon(1e-14));
  }
}

// A mask built for another padded length than the ids (mask_from_lengths(lengths, T + 1)): the Chain
// dropped the mask at the Embedding (its time no longer matched) and then said "no layer takes one" of
// a Chain whose RNN does take it. The RNN now names the misfit, with both shapes.
TEST_CASE("new users s14: a mask of the wrong length after an Embedding names the misfit, not a missing taker") {
  Generator gen(2);
  Chain model(Embedding(9, 4, float32, gen), RNN(4, 3, "tanh", {}, {.return_sequences = false}, gen));
  const Tensor ids = Tensor::ones({5, 2});
  const std::string msg = message_of<ShapeError>([&] { model(ids, mask_from_lengths({5, 3}, 6)); });
  CHECK_CONTAINS_ONCE(msg, "mask (6, 2) does not fit the sequence (5, 4, 2)");
  CHECK_CONTAINS_ONCE(msg, "RNN(4 => 3, tanh");
  // The mask's use still ends where a layer ends the time axis (return_sequences = false).
  Chain two(RNN(4, 3, "tanh", {}, {.return_sequences = false}, gen), Dense(3, 1, {}, true, float32, gen));
  CHECK(two(Tensor::ones({5, 4, 2}), mask_from_lengths({5, 3})).shape() == Shape{1, 2});
}

// A (time, features, batch, 1) tensor (a Keras user's trailing channel axis) or a 0-d scalar: the
// layer passed it to its one-step path, whose check read axis 0 as the features ("got 2 features"),
// and a bidirectional layer said it "cannot run one step at a time".
TEST_CASE("new users s14: a recurrent layer given a 4-D or 0-D input says what it takes") {
  Generator gen(3);
  Recurrent uni = RNN(3, 4, "tanh", {}, {}, gen);
  Recurrent bi = LSTM(3, 4, {}, {.bidirectional = true}, gen);
  Recur recur(LSTMCell(3, 4, {}, gen));
  for (Module* m : std::vector<Module*>{&uni, &bi, &recur}) {
    CAPTURE(m->repr());
    const std::string four = message_of<ShapeError>([&] { (*m)(Tensor::zeros({2, 3, 5, 1})); });
    CHECK_CONTAINS_ONCE(four, m->repr() + ": input (2, 3, 5, 1): expected a sequence (time, 3, batch) or one step (3, batch)");
    const std::string zero = message_of<ShapeError>([&] { (*m)(Tensor::scalar(1.0)); });
    CHECK_CONTAINS_ONCE(zero, "input (): expected a sequence (time, 3, batch)");
  }
}

// Keras' Bidirectional(…, merge_mode=…) has "concat", "sum", "mul" and "ave"; rewind had only concat
// and sum, so a Keras model with merge_mode="ave" (or "mul") could not be written. Each merge is that
// function of the two directions' outputs — per step and for the last output — and the layer above
// a non-concat merge takes H features.
TEST_CASE("new users s14: Bidirectional merge modes mul and ave are Keras' merge_mode") {
  Generator gen(4);
  const std::size_t T = 4, F = 3, H = 5, B = 3;
  const Tensor x = Tensor::randn({T, F, B}, gen, float64);
  const Tensor mask = mask_from_lengths({4, 2, 3}, T, float64);
  for (Merge merge : {Merge::mul, Merge::ave}) {
    Recurrent m = GRU(F, H, {.dtype = float64}, {.num_layers = 2, .bidirectional = true, .merge = merge}, gen);
    CHECK(m.output_size() == H);
    CHECK(m.cell(1).input_size() == H);
    CHECK_CONTAINS_ONCE(m.repr(), merge == Merge::mul ? "merge=mul" : "merge=ave");
    const RecurrentRun run = m.run(split_steps(x), mask);
    // Layer 0 by hand from its two cells, then layer 1 on the merged outputs.
    auto merged = [&](const Tensor& f, const Tensor& r) { return merge == Merge::mul ? f * r : (f + r) * 0.5; };
    std::vector<Tensor> mid;
    const SequenceRun f0 = run_sequence(m.cell(0), split_steps(x), {}, mask), r0 = run_sequence(m.cell(0, true), split_steps(x), {}, mask, true);
    for (std::size_t t = 0; t < T; ++t) mid.push_back(merged(f0.outputs[t], r0.outputs[t]));
    const SequenceRun f1 = run_sequence(m.cell(1), mid, {}, mask), r1 = run_sequence(m.cell(1, true), mid, {}, mask, true);
    for (std::size_t t = 0; t < T; ++t) {
      const std::vector<double> got = run.outputs[t].to_vector(), want = merged(f1.outputs[t], r1.outputs[t]).to_vector();
      REQUIRE(got.size() == H * B);
      for (std::size_t k = 0; k < got.size(); ++k) CHECK(got[k] == doctest::Approx(want[k]).epsilon(1e-14));
    }
    const std::vector<double> last = run.last.to_vector(), want_last = merged(f1.last, r1.last).to_vector();
    for (std::size_t k = 0; k < last.size(); ++k) CHECK(last[k] == doctest::Approx(want_last[k]).epsilon(1e-14));
  }
  // A Merge that is none of them (a cast integer) is refused at construction, naming the value.
  CHECK_CONTAINS_ONCE(message_of<ValueError>([&] { LSTM(2, 3, {}, {.bidirectional = true, .merge = static_cast<Merge>(7)}); }),
                      "merge 7 is not one of");
}

// A PyTorch user passes nn.LSTM's h0/c0 as they are, (layers·dirs, batch, hidden), or a Keras user
// (batch, hidden): the message named the shapes but not the layout, and for (batch, hidden) with
// batch = hidden's transpose nothing said the two axes were swapped.
TEST_CASE("new users s14: an initial state in PyTorch's or Keras' layout says how to convert it") {
  Generator gen(5);
  Recurrent lstm = LSTM(3, 4, {}, {}, gen);
  const Tensor x = Tensor::randn({5, 3, 2}, gen);
  const std::string torch = message_of<ShapeError>([&] { lstm(x, State{Tensor::zeros({1, 2, 4}), Tensor::zeros({1, 2, 4})}); });
  CHECK_CONTAINS_ONCE(torch, "LSTM(3 => 4): the initial state of layer 0: state 0 is (1, 2, 4) but must be (4, 2)");
  CHECK_CONTAINS_ONCE(torch, "from_torch_states");
  const std::string keras = message_of<ShapeError>([&] { lstm(x, State{Tensor::zeros({2, 4}), Tensor::zeros({2, 4})}); });
  CHECK_CONTAINS_ONCE(keras, "state 0 is (2, 4) but must be (4, 2)");
  CHECK_CONTAINS_ONCE(keras, "this is (batch, hidden)");
  // The conversion the message names gives the layer what it takes.
  const std::vector<State> init = from_torch_states({Tensor::zeros({1, 2, 4}), Tensor::zeros({1, 2, 4})});
  CHECK(lstm(x, init).shape() == Shape{5, 4, 2});
}

// Tied layers — one module in two places of a model (Flux's `Chain(d, tanh, d)`, a PyTorch module
// assigned to two attributes): parameters() listed its tensors twice, so `Adam opt(m.parameters())`
// was refused ("parameter 2 is the same tensor as parameter 0") with no way out but deduplicating by
// hand, and num_parameters() and summary() counted them twice. PyTorch's parameters() gives each
// once; its state_dict keeps every name (so does rewind's).
TEST_CASE("new users s14: a module shared by two parents gives its parameters once to an optimizer") {
  Generator gen(6);
  auto d = std::make_shared<Dense>(3, 3, Activation{}, true, float64, gen);
  Chain m(d, Act("tanh"), d);
  const std::vector<Tensor> ps = m.parameters();
  REQUIRE(ps.size() == 2);
  CHECK(&ps[0].impl() == &d->weight.impl());
  CHECK(m.num_parameters() == 12);
  CHECK(m.named_parameters().size() == 4);  // 0.weight, 0.bias, 2.weight, 2.bias: PyTorch's state_dict keys
  const std::string table = m.summary();
  CHECK_CONTAINS_ONCE(table, "shared with 0");
  CHECK_CONTAINS_ONCE(table, "total: 12 parameters");
  // Trains: one SGD step moves the shared weight once, by the sum of both uses' gradients.
  SGD opt(m.parameters(), {.lr = 0.1});
  const Tensor x = Tensor::randn({3, 2}, gen, float64);
  const Tensor before = d->weight.detach();
  Tensor loss = sum(square(m(x)));
  loss.backward();
  const std::vector<double> g = d->weight.grad().to_vector(), w0 = before.to_vector();
  opt.step();
  const std::vector<double> w1 = d->weight.to_vector();
  for (std::size_t k = 0; k < g.size(); ++k) CHECK(w1[k] == doctest::Approx(w0[k] - 0.1 * g[k]).epsilon(1e-15));
  // A Recurrent shared by two Chains (one carried state): the pair's parameters, each once.
  auto r = std::make_shared<Recurrent>(GRU(3, 3, {.dtype = float64}, {}, gen));
  Chain two(r, r);
  CHECK(two.parameters().size() == 4);
}

// Flux's 3-D sequence is (features, batch, time), PyTorch's (time, batch, features) or batch_first,
// Keras' (batch, time, features): the refusal named rewind's layout only. It now names the one the
// shape looks like and the permute that converts it — and that permute gives what the layer gives
// on rewind's own layout.
TEST_CASE("new users s14: a sequence in Flux's, PyTorch's or Keras' layout is refused with the permute that converts it") {
  Generator gen(7);
  Recurrent rnn = RNN(3, 4, "tanh", {.dtype = float64}, gen);
  const Tensor x = Tensor::randn({5, 3, 2}, gen, float64);  // (time, features, batch)
  const Tensor want = rnn(x);
  const Tensor flux = permute(x, {1, 2, 0}), torch = permute(x, {0, 2, 1}), batch_first = permute(x, {2, 0, 1});
  const std::string m_flux = message_of<ShapeError>([&] { rnn(flux); });
  CHECK_CONTAINS_ONCE(m_flux, "sequence (3, 2, 5): expected (time, 3, batch); Flux's (features, batch, time) is permute(x, {2, 0, 1})");
  CHECK_CONTAINS_ONCE(message_of<ShapeError>([&] { rnn(torch); }), "PyTorch's (time, batch, features) is permute(x, {0, 2, 1})");
  CHECK_CONTAINS_ONCE(message_of<ShapeError>([&] { rnn(batch_first); }), "(batch_first, Keras) permute(x, {1, 2, 0})");
  // Flux's own name, Recur, which in Flux takes that 3-D layout.
  Recur recur(RNNCell(3, 4, "tanh", {.dtype = float64}, gen));
  CHECK_CONTAINS_ONCE(message_of<ShapeError>([&] { recur(flux); }),
                      "Recur(RNNCell(3 => 4, tanh)): sequence (3, 2, 5): expected (time, 3, batch); Flux's (features, batch, time) is permute(x, {2, 0, 1})");
  CHECK(recur.state().empty());  // refused before any step
  for (const Tensor& got : {rnn(permute(flux, {2, 0, 1})), rnn(permute(torch, {0, 2, 1})), rnn(permute(batch_first, {1, 2, 0}))}) {
    const std::vector<double> g = got.to_vector(), w = want.to_vector();
    REQUIRE(g.size() == w.size());
    for (std::size_t k = 0; k < g.size(); ++k) CHECK(g[k] == w[k]);
  }
}
