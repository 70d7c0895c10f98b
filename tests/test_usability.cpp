// What new users reached for and did not find (issue 14): initial states without a mask, saving and
// restoring a model's carried state.
#include <doctest/doctest.h>

#include <rewind.hpp>

#include "support.hpp"

using namespace rwd;

TEST_CASE("Recurrent: lstm(x, initial) without a mask argument equals lstm(x, {}, initial)") {
  Generator gen(3);
  Recurrent lstm = LSTM(3, 4, {.dtype = float64}, {.num_layers = 2, .bidirectional = true}, gen);
  const Tensor x = Tensor::uniform({5, 3, 2}, -1, 1, gen, float64);
  std::vector<State> initial;
  for (std::size_t i = 0; i < 4; ++i)
    initial.push_back({Tensor::uniform({4, 2}, -1, 1, gen, float64), Tensor::uniform({4, 2}, -1, 1, gen, float64)});
  const Tensor with_mask_arg = lstm(x, Tensor(), initial);
  CHECK(lstm(x, initial).to_vector() == with_mask_arg.to_vector());
  CHECK(lstm.forward(x, initial).to_vector() == with_mask_arg.to_vector());
  // `{}` still means "no mask, the cells' own initial states".
  CHECK(lstm(x, {}).to_vector() == lstm(x).to_vector());
  CHECK(lstm(x, {}).to_vector() != with_mask_arg.to_vector());
  // One layer, one direction: a single State, as PyTorch's lstm(x, (h0, c0)).
  Recurrent one = LSTM(3, 4, {.dtype = float64}, {}, gen);
  const State s0{initial[0][0], initial[0][1]};
  CHECK(one(x, s0).to_vector() == one(x, Tensor(), {s0}).to_vector());
  // The stacked model refuses a single state, naming the count.
  CHECK(contains(message_of<ValueError>([&] { lstm(x, s0); }), "got 1 initial states"));
}

TEST_CASE("save_states and restore_states rewind every stateful layer of a model") {
  Generator gen(4);
  Chain m(RNN(2, 3, "tanh", {.dtype = float64}, gen), Dense(3, 3, {}, true, float64, gen), GRU(3, 2, {.dtype = float64}, {}, gen));
  const Tensor x = Tensor::uniform({2, 4}, -1, 1, gen, float64);
  const auto fresh = save_states(m);  // before any step: nothing carried
  m(x);
  const auto after_one = save_states(m);
  const std::vector<double> second = m(x).to_vector();
  restore_states(m, after_one);
  CHECK(m(x).to_vector() == second);  // the same step again from the same state
  restore_states(m, fresh);
  const std::vector<double> first_again = m(x).to_vector();
  reset(m);
  CHECK(m(x).to_vector() == first_again);  // an empty saved state is the initial state
  // The saved values do not move with the model, and carry no history.
  for (const auto& s : after_one)
    for (const Tensor& t : s) CHECK_FALSE(t.requires_grad());
  // A state saved from another model is refused, naming both sizes.
  Chain other(RNN(2, 3, "tanh", {.dtype = float64}, gen));
  const std::string msg = message_of<ValueError>([&] { restore_states(other, after_one); });
  CHECK(contains(msg, "restore_states"));
  CHECK(contains(msg, std::to_string(after_one.size()) + " modules"));
}

TEST_CASE("Chain(x, mask): a padded classifier is a Chain, and each sequence gives what it gives alone") {
  Generator gen(5);
  Chain m(Embedding(7, 4, float64, gen), GRU(4, 3, {.dtype = float64}, {.bidirectional = true, .return_sequences = false}, gen),
          Dense(6, 2, {}, true, float64, gen));
  CHECK(m.takes_mask());
  CHECK_FALSE(Dense(2, 2).takes_mask());
  // Three sequences of lengths 4, 2 and 3, padded with token 0 to (time 4, batch 3).
  const std::vector<std::vector<double>> seqs{{1, 2, 3, 4}, {5, 6}, {2, 2, 6}};
  std::vector<double> ids(4 * 3, 0.0);
  for (std::size_t b = 0; b < 3; ++b)
    for (std::size_t t = 0; t < seqs[b].size(); ++t) ids[t * 3 + b] = seqs[b][t];
  const Tensor padded = Tensor::from_vector(ids, {4, 3}, float64);
  const Tensor mask = mask_from_lengths({4, 2, 3}, 4, float64);
  const Tensor logits = m(padded, mask);
  REQUIRE(logits.shape() == Shape{2, 3});
  for (std::size_t b = 0; b < 3; ++b) {
    const Tensor alone = m(Tensor::from_vector(seqs[b], {seqs[b].size(), 1}, float64));
    for (std::size_t k = 0; k < 2; ++k) CHECK(logits.at({k, b}) == doctest::Approx(alone.at({k, 0})).epsilon(1e-14));
  }
  // Without the mask the padding is read as tokens: different outputs for the padded columns.
  CHECK(m(padded).at({0, 1}) != doctest::Approx(logits.at({0, 1})).epsilon(1e-14));
  // Gradients flow through the masked Chain to the embedding rows used (and not to unused token 0 … only via padding).
  sum(logits).backward();
  CHECK(m.parameters()[0].grad().defined());
}

TEST_CASE("Chain(x, mask): a mask nobody takes, or of the wrong shape, is refused") {
  Generator gen(6);
  Chain dense_only(Dense(3, 2, {}, true, float64, gen));
  const Tensor x = Tensor::uniform({5, 3, 2}, -1, 1, gen, float64);
  const Tensor mask = mask_from_lengths({5, 3}, 5, float64);
  CHECK(contains(message_of<ValueError>([&] { dense_only(Tensor::uniform({3, 2}, -1, 1, gen, float64), mask); }),
                 "no layer takes one"));
  Chain rnn(RNN(3, 4, "tanh", {.dtype = float64}, gen), Dense(4, 1, {}, true, float64, gen));
  const std::string msg = message_of<ShapeError>([&] { rnn(x, mask_from_lengths({5, 3, 1}, 5, float64)); });
  CHECK(contains(msg, "(5, 3)"));
  CHECK(contains(msg, "(5, 3, 2)"));
  CHECK(contains(message_of<ValueError>([&] { Dense(3, 2).forward_masked(x, mask); }), "takes no mask"));
  // A Chain nested in a Chain passes the mask on.
  Chain outer(Chain(RNN(3, 4, "tanh", {.dtype = float64}, gen)));
  CHECK(outer(x, mask).shape() == Shape{5, 4, 2});
}
