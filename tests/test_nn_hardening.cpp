// Hostile sizes and values at the layers (issue 10, items 3, 10, 11, 12): a size of 0 is refused by
// every constructor; batch 0 and zero time steps are refused with a message that says so; masks must
// be 0/1; Embedding ids are checked as doubles before any cast; a dtype mix names the layer; state
// tensors are checked against (hidden, batch); load_torch names its file; and a whole-sequence call on
// a shared Recurrent writes no shared state (each thread reads its own final state).
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <rewind.hpp>

#include "support.hpp"

using namespace rwd;

namespace {

// The message of a ValueError thrown by f, checked to contain every part.
template <class E = ValueError, class F>
void check_refused(F&& f, std::initializer_list<const char*> parts) {
  const std::string m = message_of<E>(std::forward<F>(f));
  for (const char* p : parts) CHECK_MESSAGE(contains(m, p), "'" << m << "' lacks '" << std::string(p) << "'");
}

}  // namespace

TEST_CASE("nn hardening: every layer with a size refuses 0, naming the layer and the argument") {
  // PyTorch's rule ("hidden_size must be greater than zero"), applied to every size of every layer.
  check_refused([] { Dense(0, 2); }, {"Dense", "in", "at least 1, got 0"});
  check_refused([] { Dense(3, 0); }, {"Dense", "out", "at least 1, got 0"});
  check_refused([] { Embedding(0, 4); }, {"Embedding", "num", "at least 1, got 0"});
  check_refused([] { Embedding(5, 0); }, {"Embedding", "dim", "at least 1, got 0"});
  check_refused([] { LayerNorm(0); }, {"LayerNorm", "features", "at least 1, got 0"});
  check_refused([] { LayerNorm(3, -1e-5); }, {"LayerNorm", "eps"});
  check_refused([] { LayerNorm(3, std::nan("")); }, {"LayerNorm", "eps"});
  check_refused([] { RNNCell(0, 4); }, {"RNNCell", "input", "at least 1, got 0"});
  check_refused([] { RNNCell(3, 0); }, {"RNNCell", "hidden", "at least 1, got 0"});
  check_refused([] { LSTMCell(0, 4); }, {"LSTMCell", "input", "at least 1, got 0"});
  check_refused([] { LSTMCell(3, 0); }, {"LSTMCell", "hidden", "at least 1, got 0"});
  check_refused([] { GRUCell(0, 4); }, {"GRUCell", "input", "at least 1, got 0"});
  check_refused([] { GRUCell(3, 0); }, {"GRUCell", "hidden", "at least 1, got 0"});
  check_refused([] { RNN(3, 0); }, {"RNN", "hidden", "at least 1, got 0"});
  check_refused([] { LSTM(3, 0); }, {"LSTM", "hidden", "at least 1, got 0"});
  check_refused([] { GRU(3, 0); }, {"GRU", "hidden", "at least 1, got 0"});
  check_refused([] { LSTM(0, 4); }, {"LSTM", "input", "at least 1, got 0"});
  check_refused([] { LSTM(3, 4, {}, {.num_layers = 0}); }, {"num_layers", "at least 1, got 0"});
  check_refused([] { Recurrent(std::vector<std::shared_ptr<Cell>>{}); }, {"Recurrent", "cells"});
  check_refused([] { Recur(std::shared_ptr<Cell>()); }, {"Recur", "null"});
  check_refused([] { Dropout(-0.1); }, {"Dropout", "p", "[0, 1)"});
  check_refused([] { Dropout(1.0); }, {"Dropout", "p", "[0, 1)"});
  check_refused([] { Dropout(std::nan("")); }, {"Dropout", "p", "[0, 1)"});
  check_refused([] { LSTM(3, 4, {}, {.num_layers = 2, .dropout = 1.0}); }, {"dropout", "[0, 1)"});
  check_refused([] { mask_from_lengths({0, 0}); }, {"mask_from_lengths", "zero time steps"});
  // Size 1 everywhere is fine, and runs.
  NoGradGuard no_grad;
  CHECK(LSTM(1, 1)(Tensor::ones({2, 1, 1})).shape() == Shape{2, 1, 1});
  CHECK(GRU(1, 1)(Tensor::ones({2, 1, 1})).shape() == Shape{2, 1, 1});
  CHECK(Dense(1, 1)(Tensor::ones({1, 1})).shape() == Shape{1, 1});
}

TEST_CASE("nn hardening: batch 0 is refused by every layer with a message that says batch 0") {
  Generator gen(1);
  const Tensor x0 = Tensor::zeros({3, 0});
  const Tensor seq0 = Tensor::zeros({4, 3, 0});
  SUBCASE("Dense, LayerNorm, Embedding") {
    Dense d(3, 2, {}, true, float32, gen);
    check_refused<ShapeError>([&] { d(x0); }, {"Dense(3 => 2)", "batch 0"});
    LayerNorm n(3);
    check_refused<ShapeError>([&] { n(x0); }, {"LayerNorm(3)", "batch 0"});
    Embedding e(5, 4, float32, gen);
    check_refused<ShapeError>([&] { e(Indices{}); }, {"Embedding(5 => 4)", "batch 0"});
    check_refused<ShapeError>([&] { e(Tensor::zeros({0})); }, {"Embedding(5 => 4)", "batch 0"});
    check_refused<ShapeError>([&] { e(Tensor::zeros({2, 0})); }, {"Embedding(5 => 4)", "batch 0"});
    check_refused<ValueError>([&] { e(Tensor::zeros({0, 2})); }, {"Embedding(5 => 4)", "zero time steps"});
  }
  SUBCASE("cells and Recur") {
    LSTMCell lstm(3, 4, {}, gen);
    GRUCell gru(3, 4, {}, gen);
    RNNCell rnn(3, 4, "tanh", {}, gen);
    check_refused<ShapeError>([&] { lstm(x0); }, {"LSTMCell(3 => 4)", "batch 0"});
    check_refused<ShapeError>([&] { gru(x0); }, {"GRUCell(3 => 4)", "batch 0"});
    check_refused<ShapeError>([&] { rnn(x0); }, {"RNNCell(3 => 4, tanh)", "batch 0"});
    check_refused<ShapeError>([&] { lstm.step(x0, lstm.initial_state(0)); }, {"LSTMCell(3 => 4)", "batch 0"});
    Recur r(LSTMCell(3, 4, {}, gen));
    check_refused<ShapeError>([&] { r(x0); }, {"batch 0"});
    check_refused<ShapeError>([&] { r(seq0); }, {"batch 0"});
    CHECK(r.state().empty());  // a refused call leaves nothing behind
    check_refused<ShapeError>([&] { run_sequence(lstm, seq0); }, {"batch 0"});
  }
  SUBCASE("Recurrent, whole sequences and steps") {
    Recurrent m = LSTM(3, 4, {}, {.num_layers = 2}, gen);
    check_refused<ShapeError>([&] { m(seq0); }, {"LSTM(3 => 4, layers=2)", "batch 0"});
    check_refused<ShapeError>([&] { m(x0); }, {"LSTM(3 => 4, layers=2)", "batch 0"});
    check_refused<ShapeError>([&] { m(split_steps(seq0)); }, {"LSTM(3 => 4, layers=2)", "batch 0"});
    TimeDistributed td(Dense(3, 2, {}, true, float32, gen));
    check_refused<ShapeError>([&] { td(seq0); }, {"TimeDistributed", "batch 0"});
    check_refused<ValueError>([&] { td(Tensor::zeros({0, 3, 2})); }, {"TimeDistributed", "zero time steps"});
  }
  SUBCASE("losses on an empty batch") {
    const Tensor p = Tensor::zeros({2, 0});
    check_refused<ShapeError>([&] { mse_loss(p, p); }, {"mse_loss", "batch 0"});
    check_refused<ShapeError>([&] { l1_loss(p, p); }, {"l1_loss", "batch 0"});
    check_refused<ShapeError>([&] { huber_loss(p, p); }, {"huber_loss", "batch 0"});
    check_refused<ShapeError>([&] { binary_cross_entropy(p, p); }, {"binary_cross_entropy", "batch 0"});
    check_refused<ShapeError>([&] { binary_cross_entropy_with_logits(p, p); }, {"binary_cross_entropy_with_logits", "batch 0"});
    check_refused<ShapeError>([&] { cross_entropy(Tensor::zeros({3, 0}), Indices{}); }, {"cross_entropy", "batch 0"});
    check_refused<ShapeError>([&] { cross_entropy(Tensor::zeros({3, 0}), Tensor::zeros({3, 0})); }, {"cross_entropy", "batch 0"});
    check_refused<ShapeError>([&] { nll_loss(Tensor::zeros({3, 0}), Indices{}); }, {"nll_loss", "batch 0"});
    check_refused<ShapeError>([&] { reduce_loss(p); }, {"reduce_loss", "batch 0"});
  }
}

TEST_CASE("nn hardening: zero time steps are refused naming the layer") {
  Generator gen(2);
  const Tensor empty = Tensor::zeros({0, 3, 2});
  Recur r(GRUCell(3, 4, {}, gen));
  check_refused<ValueError>([&] { r(empty); }, {"Recur(GRUCell(3 => 4))", "(0, 3, 2)", "zero time steps"});
  Recurrent m = GRU(3, 4, {}, {}, gen);
  check_refused<ValueError>([&] { m(empty); }, {"GRU(3 => 4)", "zero time steps"});
  check_refused<ValueError>([&] { m(std::vector<Tensor>{}); }, {"GRU(3 => 4)", "zero time steps"});
  GRUCell cell(3, 4, {}, gen);
  check_refused<ValueError>([&] { run_sequence(cell, std::vector<Tensor>{}); }, {"GRUCell(3 => 4)", "zero time steps"});
}

TEST_CASE("nn hardening: a mask must hold only 0 and 1, refused with the position and the value") {
  Generator gen(3);
  Recurrent m = LSTM(2, 3, {}, {}, gen);
  const Tensor seq = Tensor::uniform({3, 2, 2}, -1, 1, gen);
  auto mask_with = [](double v) {
    std::vector<double> m(6, 1.0);
    m[3] = v;  // (t, b) = (1, 1)
    return Tensor::from_vector(m, {3, 2});
  };
  check_refused([&] { m(seq, mask_with(0.5)); }, {"LSTM(2 => 3)", "mask", "(1, 1)", "0.5", "0 or 1"});
  check_refused([&] { m(seq, mask_with(std::nan(""))); }, {"LSTM(2 => 3)", "mask", "(1, 1)", "nan"});
  check_refused([&] { m(seq, mask_with(-1)); }, {"LSTM(2 => 3)", "mask", "(1, 1)", "-1"});
  check_refused([&] { m(seq, mask_with(2)); }, {"mask", "(1, 1)", "2"});
  LSTMCell cell(2, 3, {}, gen);
  check_refused([&] { run_sequence(cell, seq, {}, mask_with(0.5)); }, {"LSTMCell(2 => 3)", "mask", "(1, 1)", "0.5"});
  // 0 and 1 (and -0) pass, in either dtype.
  NoGradGuard no_grad;
  CHECK(m(seq, mask_with(0)).shape() == Shape{3, 3, 2});
  CHECK(m(seq, mask_with(-0.0)).shape() == Shape{3, 3, 2});
  CHECK(m(seq, mask_with(1).to(float64)).shape() == Shape{3, 3, 2});
}

TEST_CASE("nn hardening: loss weights must be finite and non-negative, refused with the position") {
  const Tensor p = Tensor::zeros({2, 3}), t = Tensor::ones({2, 3});
  auto weight_with = [](double v) { return Tensor::from_vector(std::vector<double>{1, 1, v}, {1, 3}); };
  check_refused([&] { mse_loss(p, t, {.weight = weight_with(-1)}); }, {"mse_loss", "weight", "(0, 2)", "-1"});
  check_refused([&] { mse_loss(p, t, {.weight = weight_with(std::nan(""))}); }, {"mse_loss", "weight", "(0, 2)", "nan"});
  check_refused([&] { l1_loss(p, t, {.weight = weight_with(INFINITY)}); }, {"l1_loss", "weight", "(0, 2)", "inf"});
  check_refused([&] { cross_entropy(p, Indices{0, 1, 1}, {.weight = Tensor::from_vector(std::vector<double>{1, -2, 1}, {3})}); },
                {"cross_entropy", "weight", "(1,)", "-2"});
  check_refused([&] { reduce_loss(p, Reduction::mean, weight_with(-0.5)); }, {"reduce_loss", "weight", "-0.5"});
  // Fractional non-negative weights are weights, not masks: allowed.
  CHECK(mse_loss(p, t, {.weight = weight_with(0.5)}).item() == doctest::Approx(1.0));
}

TEST_CASE("nn hardening: Embedding checks each id as a double before casting it") {
  Generator gen(4);
  Embedding e(5, 4, float32, gen);
  auto ids = [](double v) { return Tensor::from_vector(std::vector<double>{1, 2, v}, {3}, float64); };
  check_refused([&] { e(ids(1e20)); }, {"Embedding(5 => 4)", "position 2", "1e+20"});
  check_refused([&] { e(ids(INFINITY)); }, {"Embedding(5 => 4)", "position 2", "inf"});
  check_refused([&] { e(ids(-INFINITY)); }, {"Embedding(5 => 4)", "position 2", "-inf"});
  check_refused([&] { e(ids(std::nan(""))); }, {"Embedding(5 => 4)", "position 2", "nan"});
  check_refused([&] { e(ids(-1)); }, {"Embedding(5 => 4)", "position 2", "-1"});
  check_refused([&] { e(ids(2.5)); }, {"Embedding(5 => 4)", "position 2", "2.5", "whole number"});
  check_refused([&] { e(ids(5)); }, {"Embedding(5 => 4)", "position 2", "5", "[0, 5)"});
  // (time, batch) ids name the (t, b) position.
  check_refused([&] { e(Tensor::from_vector(std::vector<double>{0, 1, 2, 9e18}, {2, 2})); },
                {"Embedding(5 => 4)", "(1, 1)", "9e+18"});
  const std::string m = message_of<ValueError>([&] { e(ids(1e20)); });
  CHECK_FALSE(contains(m, "-9223372036854775808"));
  NoGradGuard no_grad;
  CHECK(e(ids(4)).shape() == Shape{4, 3});
}

TEST_CASE("nn hardening: a dtype mix names the layer, not affine") {
  Generator gen(5);
  const Tensor x64 = Tensor::zeros({3, 2}, float64);
  Dense d(3, 2, {}, true, float32, gen);
  check_refused<DtypeError>([&] { d(x64); },
                            {"Dense(3 => 2): input is float64 but the layer's parameters are float32", ".to(float64) the model", ".to(float32) the input"});
  LayerNorm n(3);
  check_refused<DtypeError>([&] { n(x64); }, {"LayerNorm(3): input is float64 but the layer's parameters are float32"});
  LSTMCell lstm(3, 4, {}, gen);
  check_refused<DtypeError>([&] { lstm(x64); }, {"LSTMCell(3 => 4): input is float64", "float32"});
  check_refused<DtypeError>([&] { lstm.step(Tensor::zeros({3, 2}), State{Tensor::zeros({4, 2}, float64), Tensor::zeros({4, 2})}); },
                            {"LSTMCell(3 => 4): state 0 is float64", "float32"});
  GRUCell gru(3, 4, {}, gen);
  check_refused<DtypeError>([&] { gru(x64); }, {"GRUCell(3 => 4): input is float64"});
  RNNCell rnn(3, 4, "tanh", {}, gen);
  check_refused<DtypeError>([&] { rnn(x64); }, {"RNNCell(3 => 4, tanh): input is float64"});
  Recurrent m = LSTM(3, 4, {}, {}, gen);
  check_refused<DtypeError>([&] { m(Tensor::zeros({2, 3, 2}, float64)); }, {"LSTM(3 => 4): input is float64"});
  check_refused<DtypeError>([&] { m(x64); }, {"input is float64", "float32"});
}

TEST_CASE("nn hardening: every state tensor is checked against (hidden, batch)") {
  Generator gen(6);
  LSTMCell cell(3, 6, {}, gen);
  const Tensor x = Tensor::zeros({3, 4});
  // A c0 of shape (1, 4) used to be broadcast silently over the 6 hidden rows.
  check_refused<ShapeError>([&] { cell.step(x, {Tensor::zeros({6, 4}), Tensor::zeros({1, 4})}); },
                            {"LSTMCell(3 => 6)", "state 1", "(1, 4)", "(6, 4)"});
  check_refused<ShapeError>([&] { cell.step(x, {Tensor::zeros({1, 4}), Tensor::zeros({6, 4})}); },
                            {"LSTMCell(3 => 6)", "state 0", "(1, 4)", "(6, 4)"});
  check_refused<ShapeError>([&] { cell.step(Tensor::zeros({3}), {Tensor::zeros({6}), Tensor::zeros({1})}); },
                            {"LSTMCell(3 => 6)", "state 1", "(1,)", "(6,)"});
  GRUCell gru(3, 6, {}, gen);
  check_refused<ShapeError>([&] { gru.step(x, {Tensor::zeros({1, 4})}); }, {"GRUCell(3 => 6)", "state 0", "(1, 4)", "(6, 4)"});
  RNNCell rnn(3, 6, "tanh", {}, gen);
  check_refused<ShapeError>([&] { rnn.step(x, {Tensor::zeros({6, 1})}); }, {"RNNCell(3 => 6, tanh)", "state 0", "(6, 1)", "(6, 4)"});
  // Initial states given to a Recurrent name the layer, its index and both shapes.
  Recurrent m = LSTM(3, 6, {}, {.num_layers = 2}, gen);
  const Tensor seq = Tensor::zeros({2, 3, 4});
  std::vector<State> init = {{Tensor::zeros({6, 4}), Tensor::zeros({6, 4})}, {Tensor::zeros({6, 4}), Tensor::zeros({1, 4})}};
  check_refused<ShapeError>([&] { m(seq, Tensor(), init); }, {"LSTM(3 => 6, layers=2)", "layer 1", "state 1", "(1, 4)", "(6, 4)"});
  init[1] = {Tensor::zeros({6, 4})};
  check_refused<ValueError>([&] { m(seq, Tensor(), init); }, {"LSTM(3 => 6, layers=2)", "layer 1", "2 tensors", "got 1"});
  // A Recur's set_state is checked at the next step, naming the cell.
  Recur r(LSTMCell(3, 6, {}, gen));
  r.set_state({Tensor::zeros({6, 4}), Tensor::zeros({1, 4})});
  check_refused<ShapeError>([&] { r(x); }, {"LSTMCell(3 => 6)", "state 1", "(1, 4)", "(6, 4)"});
}

TEST_CASE("nn hardening: load_torch errors name the file") {
  Generator gen(7);
  const std::filesystem::path path = std::filesystem::temp_directory_path() / "rwd_nn_hardening_torch.npz";
  Dense small(2, 2, {}, true, float32, gen);
  save_npz(path.string(), small.state_dict());
  Dense d(3, 2, {}, true, float32, gen);
  check_refused<ShapeError>([&] { load_torch(d, path.string()); }, {"load_torch", path.string().c_str(), "weight"});
  Dense nobias(2, 2, {}, false, float32, gen);
  check_refused<ValueError>([&] { load_torch(nobias, path.string()); }, {"load_torch", path.string().c_str(), "unexpected key"});
  std::filesystem::remove(path);
}

TEST_CASE("nn hardening: inference on one shared Recurrent from two threads writes no shared state") {
  // A module's parameters may be read from many threads at once; a whole-sequence call keeps its final
  // state per thread, so two threads running the same model neither race nor see each other's state.
  Generator gen(8);
  Recurrent m = LSTM(3, 5, {}, {.num_layers = 2, .bidirectional = true}, gen);
  m.eval();
  std::vector<Tensor> inputs;
  for (int k = 0; k < 2; ++k) inputs.push_back(Tensor::uniform({6, 3, 2}, -1, 1, gen));
  std::vector<std::vector<double>> serial_out, serial_final;
  {
    NoGradGuard no_grad;
    for (const Tensor& x : inputs) {
      serial_out.push_back(m(x).to_vector());
      serial_final.push_back(m.final_state(1, true)[1].to_vector());
    }
  }
  std::vector<int> mismatches(2, 0);
  auto work = [&](int k) {
    NoGradGuard no_grad;  // thread_local: this thread records nothing, the other is unaffected
    for (int rep = 0; rep < 50; ++rep) {
      if (m(inputs[k]).to_vector() != serial_out[k]) ++mismatches[k];
      if (m.final_state(1, true)[1].to_vector() != serial_final[k]) ++mismatches[k];
    }
  };
  std::thread a(work, 0), b(work, 1);
  a.join();
  b.join();
  CHECK(mismatches[0] == 0);
  CHECK(mismatches[1] == 0);
  CHECK(GradMode::enabled());  // the threads' guards did not touch this thread's mode

  // Deterministically: another thread's call does not change what this thread reads.
  {
    NoGradGuard no_grad;
    m(inputs[0]);
  }
  std::thread([&] {
    NoGradGuard no_grad;
    m(inputs[1]);
    CHECK(m.final_state(1, true)[1].to_vector() == serial_final[1]);
  }).join();
  CHECK(m.final_state(1, true)[1].to_vector() == serial_final[0]);
  m.reset_state();
  CHECK(m.final_states().empty());
}

TEST_CASE("nn hardening: a thread's final states go when the thread ends (a thread per request keeps none)") {
  Generator gen(9);
  Recurrent m = GRU(3, 4, {}, {}, gen);
  m.eval();
  const Tensor x = Tensor::uniform({5, 3, 2}, -1, 1, gen);
  {
    NoGradGuard no_grad;
    m(x);  // this thread's entry stays while it runs
  }
  CHECK(detail::final_state_threads(m) == 1);
  for (int request = 0; request < 100; ++request)
    std::thread([&] {
      NoGradGuard no_grad;
      m(x);
      m(x);  // a second call replaces this thread's entry
      CHECK(detail::final_state_threads(m) == 2);
    }).join();
  CHECK(detail::final_state_threads(m) == 1);  // only this thread's
  CHECK(m.final_states().size() == 1);
  // A thread that outlives the model it called, and one that called a model it then saw go: no use of a
  // model after it is gone.
  auto gone = std::make_unique<Recurrent>(GRU(3, 4, {}, {}, gen));
  gone->eval();
  std::thread([&] {
    NoGradGuard no_grad;
    (*gone)(x);
    m(x);
    gone.reset();
  }).join();
  CHECK(detail::final_state_threads(m) == 1);
}
