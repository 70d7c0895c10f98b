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
