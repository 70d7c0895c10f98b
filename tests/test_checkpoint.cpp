// checkpoint(fn, inputs) and Recurrent's checkpointed BPTT (autograd/checkpoint.hpp): gradients bit
// for bit those of the run without checkpoints (every cell, float64 and float32, stacked,
// bidirectional, masked, with dropout), gradcheck and double backward through a checkpoint, random
// draws replayed, gradient-ready hooks, the explain view, the memory the tape holds, and the errors.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <rewind.hpp>

#include "support.hpp"

using namespace rwd;

namespace {

// Every parameter gets distinct nonzero values (peepholes and learned states start at 0 otherwise).
void randomize(Module& m, std::uint32_t seed) {
  Generator gen(seed);
  for (auto& [k, p] : m.named_parameters()) p.assign(Tensor::uniform(p.shape(), -0.8, 0.8, gen, p.dtype()));
}

// A scalar from every output, `last` and every final state, each weighted by fixed random weights
// (asymmetric: a permuted gradient would show).
Tensor weighted_loss(const RecurrentRun& run, std::uint32_t seed) {
  Generator gen(seed);
  auto w = [&](const Tensor& t) { return sum(t * Tensor::uniform(t.shape(), -1, 1, gen, t.dtype())); };
  Tensor loss = w(run.last);
  for (const Tensor& y : run.outputs) loss = loss + w(y);
  for (const State& s : run.final_states)
    for (const Tensor& t : s) loss = loss + w(t);
  return loss;
}

struct Gradients {
  std::vector<std::vector<double>> params;  // .grad() of each parameter, in order
  std::vector<double> input;                // d loss / d sequence
  std::vector<double> outputs;              // the outputs' values, all steps
};

// One forward and backward of `r` over `seq` (a copy taking a gradient), with `mask` if defined.
Gradients run_once(Recurrent& r, const Tensor& seq, const Tensor& mask) {
  r.zero_grad();
  Tensor x = seq.detach().set_requires_grad();
  RecurrentRun run = r.run(split_steps(x), mask);
  Gradients g;
  for (const Tensor& y : run.outputs) {
    const std::vector<double> v = y.to_vector();
    g.outputs.insert(g.outputs.end(), v.begin(), v.end());
  }
  backward(weighted_loss(run, 77));
  for (const Tensor& p : r.parameters()) g.params.push_back(p.grad().defined() ? p.grad().to_vector() : std::vector<double>{});
  g.input = x.grad().to_vector();
  return g;
}

using MakeLayer = std::function<Recurrent(RecurrentOptions, Generator&)>;

// The same model twice (same seed), without and with checkpoints every `every` steps: the outputs and
// every gradient must be equal bit for bit.
void check_identical(const MakeLayer& make, RecurrentOptions options, std::size_t every, Dtype dt, std::size_t T,
                     std::size_t in, std::size_t batch, bool masked) {
  Generator g1(3), g2(3);
  Recurrent plain = make(options, g1);
  RecurrentOptions with = options;
  with.checkpoint = {.on = true, .every = every};
  Recurrent ckpt = make(with, g2);
  randomize(plain, 11);
  randomize(ckpt, 11);
  Generator data(5);
  const Tensor seq = Tensor::uniform({T, in, batch}, -1, 1, data, dt);
  Tensor mask;
  if (masked) {
    std::vector<std::size_t> lengths;
    for (std::size_t b = 0; b < batch; ++b) lengths.push_back(b == 0 ? T : 1 + (b * 3) % T);
    mask = mask_from_lengths(lengths, T, dt);
  }
  const Gradients a = run_once(plain, seq, mask);
  const Gradients b = run_once(ckpt, seq, mask);
  CHECK(a.outputs == b.outputs);
  CHECK(a.input == b.input);
  REQUIRE(a.params.size() == b.params.size());
  for (std::size_t i = 0; i < a.params.size(); ++i) {
    INFO("parameter " << plain.named_parameters()[i].first);
    CHECK(!a.params[i].empty());
    CHECK(a.params[i] == b.params[i]);
  }
}

Recurrent make_rnn(RecurrentOptions o, Generator& g, Dtype dt) { return RNN(3, 5, "tanh", {.dtype = dt}, o, g); }
Recurrent make_lstm(RecurrentOptions o, Generator& g, Dtype dt) {
  return LSTM(3, 5, {.peephole = true, .learn_initial_state = true, .dtype = dt}, o, g);
}
Recurrent make_gru(RecurrentOptions o, Generator& g, Dtype dt) { return GRU(3, 5, {.dtype = dt}, o, g); }

}  // namespace

TEST_CASE("checkpoint: one entry for the whole function, the same values and gradients bit for bit") {
  Generator gen(1);
  Tensor W = Tensor::uniform({4, 4}, -1, 1, gen, float64).set_requires_grad().set_name("W");
  const Tensor x0 = Tensor::uniform({4, 3}, -1, 1, gen, float64);
  auto fn = [&](const std::vector<Tensor>& in) {
    Tensor h = in[0];
    for (int k = 0; k < 4; ++k) h = tanh(matmul(W, h)) * in[1];
    return std::vector<Tensor>{h, sigmoid(h)};
  };
  auto loss_of = [](const std::vector<Tensor>& out) { return sum(out[0] * out[0]) + sum(out[1]); };

  Tensor xa = x0.detach().set_requires_grad(), s = Tensor::scalar(0.7, float64).set_requires_grad();
  Tape plain_tape;
  const Tensor la = loss_of(fn({xa, s}));
  backward(la);
  const std::vector<double> gW = W.grad().to_vector(), gx = xa.grad().to_vector(), gs = s.grad().to_vector();
  W.zero_grad();

  Tensor xb = x0.detach().set_requires_grad(), sb = Tensor::scalar(0.7, float64).set_requires_grad();
  Tape tape;
  const std::vector<Tensor> out = checkpoint(fn, {xb, sb});
  CHECK(tape.size() == 1);  // the 12 entries of fn are not kept
  CHECK(std::string(tape[0].op) == "checkpoint");
  CHECK(tape[0].inputs.size() == 3);  // x, s and the parameter W it reads
  const Tensor lb = loss_of(out);
  CHECK(lb.item() == la.item());
  backward(lb);
  CHECK(W.grad().to_vector() == gW);
  CHECK(xb.grad().to_vector() == gx);
  CHECK(sb.grad().to_vector() == gs);
  CHECK(tape.empty());  // the re-run was dropped with the rest
}

TEST_CASE("checkpoint: Recurrent checkpointed BPTT gives the same gradients bit for bit, every cell, float64") {
  const Dtype dt = float64;
  for (std::size_t every : {0, 1, 2, 4, 7, 20}) {
    INFO("every " << every);
    check_identical([&](RecurrentOptions o, Generator& g) { return make_rnn(o, g, dt); }, {}, every, dt, 7, 3, 2, false);
    check_identical([&](RecurrentOptions o, Generator& g) { return make_lstm(o, g, dt); }, {}, every, dt, 7, 3, 2, false);
    check_identical([&](RecurrentOptions o, Generator& g) { return make_gru(o, g, dt); }, {}, every, dt, 7, 3, 2, false);
  }
}

TEST_CASE("checkpoint: Recurrent checkpointed BPTT gives the same gradients bit for bit, every cell, float32") {
  const Dtype dt = float32;
  for (std::size_t every : {0, 3}) {
    INFO("every " << every);
    check_identical([&](RecurrentOptions o, Generator& g) { return make_rnn(o, g, dt); }, {}, every, dt, 9, 3, 4, false);
    check_identical([&](RecurrentOptions o, Generator& g) { return make_lstm(o, g, dt); }, {}, every, dt, 9, 3, 4, false);
    check_identical([&](RecurrentOptions o, Generator& g) { return make_gru(o, g, dt); }, {}, every, dt, 9, 3, 4, false);
  }
}

TEST_CASE("checkpoint: Recurrent checkpointed BPTT bit for bit stacked, bidirectional, masked, with dropout") {
  for (Dtype dt : {float64, float32}) {
    INFO(dtype_name(dt));
    const RecurrentOptions stacked{.num_layers = 2, .bidirectional = true, .dropout = 0.3};
    const RecurrentOptions summed{.num_layers = 3, .bidirectional = true, .merge = Merge::sum};
    for (bool masked : {false, true}) {
      INFO("masked " << masked);
      check_identical([&](RecurrentOptions o, Generator& g) { return make_lstm(o, g, dt); }, stacked, 3, dt, 8, 3, 3, masked);
      check_identical([&](RecurrentOptions o, Generator& g) { return make_gru(o, g, dt); }, stacked, 0, dt, 8, 3, 3, masked);
      check_identical([&](RecurrentOptions o, Generator& g) { return make_rnn(o, g, dt); }, summed, 2, dt, 8, 3, 3, masked);
    }
  }
}

TEST_CASE("checkpoint: bit for bit with the input projection hoisted in blocks of steps") {
  // Projected in blocks of 256 / batch = 32 steps: the pieces are rounded up to whole blocks.
  const std::size_t before = detail::set_projection_min_inputs(1);
  for (std::size_t every : {0, 5, 40}) {
    INFO("every " << every);
    check_identical([&](RecurrentOptions o, Generator& g) { return make_lstm(o, g, float32); },
                    {.bidirectional = true}, every, float32, 70, 3, 8, true);
    check_identical([&](RecurrentOptions o, Generator& g) { return make_rnn(o, g, float64); }, {}, every, float64, 70, 3,
                    8, false);
  }
  detail::set_projection_min_inputs(before);
}

TEST_CASE("checkpoint: bit for bit with wide layers, whose GEMMs cut their inner dimension into blocks") {
  // dh += W_hhᵀ·dgates has an inner dimension of 4·hidden (3·, 1·): past a few hundred, the BLAS adds
  // it into the adjoint block by block, so a checkpoint's state must take it as any adjoint does.
  for (Dtype dt : {float32, float64}) {
    INFO(dtype_name(dt));
    check_identical([&](RecurrentOptions o, Generator& g) { return LSTM(3, 130, {.dtype = dt}, o, g); }, {}, 3, dt, 8, 3, 4, false);
    check_identical([&](RecurrentOptions o, Generator& g) { return GRU(3, 130, {.dtype = dt}, o, g); }, {}, 3, dt, 8, 3, 4, true);
    check_identical([&](RecurrentOptions o, Generator& g) { return RNN(3, 400, "tanh", {.dtype = dt}, o, g); }, {}, 3, dt, 8, 3, 4, false);
  }
}

TEST_CASE("checkpoint: gradcheck through a checkpointed LSTM and through checkpoint itself") {
  Generator gen(4);
  Recurrent lstm = LSTM(2, 3, {.peephole = true, .dtype = float64}, {.checkpoint = {.on = true, .every = 2}}, gen);
  randomize(lstm, 9);
  const Tensor seq = Tensor::uniform({5, 2, 2}, -1, 1, gen, float64);
  std::vector<Tensor> inputs = lstm.parameters();
  inputs.push_back(seq.detach().set_requires_grad().set_name("x"));
  const GradcheckReport r = gradcheck(
      [&](const std::vector<Tensor>& in) {
        RecurrentRun run = lstm.run(split_steps(in.back()));
        return weighted_loss(run, 3);
      },
      inputs);
  CHECK_MESSAGE(r.ok(), r);

  Tensor W = Tensor::uniform({3, 3}, -1, 1, gen, float64).set_requires_grad().set_name("W");
  Tensor h = Tensor::uniform({3, 2}, -1, 1, gen, float64).set_requires_grad().set_name("h");
  const GradcheckReport r2 = gradcheck(
      [&](const std::vector<Tensor>& in) {
        auto out = checkpoint([&](const std::vector<Tensor>& a) { return std::vector<Tensor>{tanh(matmul(in[0], a[0])) * a[0]}; },
                              {in[1]});
        return out[0];
      },
      {W, h});
  CHECK_MESSAGE(r2.ok(), r2);
}

TEST_CASE("checkpoint: double backward through a checkpoint equals the one without") {
  Generator gen(6);
  const Tensor W0 = Tensor::uniform({3, 3}, -1, 1, gen, float64), x0 = Tensor::uniform({3, 2}, -1, 1, gen, float64);
  auto fn = [](const Tensor& W) {
    return [W](const std::vector<Tensor>& in) {
      Tensor h = in[0];
      for (int k = 0; k < 3; ++k) h = tanh(matmul(W, h));
      return std::vector<Tensor>{h};
    };
  };
  // ‖∂L/∂W‖² differentiated again, L = Σ h ⊙ c: a Hessian-vector product in W and x.
  auto second = [&](bool ckpt) {
    Tape tape;
    Tensor W = W0.detach().set_requires_grad(), x = x0.detach().set_requires_grad();
    const Tensor c = Tensor::uniform({3, 2}, -1, 1, *std::make_unique<Generator>(8), float64);
    const Tensor h = ckpt ? checkpoint(fn(W), {x})[0] : fn(W)({x})[0];
    const Tensor L = sum(h * c);
    const std::vector<Tensor> g = grad({L}, {W, x}, {}, {.create_graph = true});
    const Tensor gg = sum(g[0] * g[0]) + sum(g[1] * g[1]);
    backward(gg);
    std::vector<double> out = W.grad().to_vector(), gx = x.grad().to_vector();
    out.insert(out.end(), gx.begin(), gx.end());
    return out;
  };
  const std::vector<double> a = second(false), b = second(true);
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(b[i] == doctest::Approx(a[i]).epsilon(1e-12));

  Tensor W = W0.detach().set_requires_grad().set_name("W");
  const GradcheckReport r = gradgradcheck(
      [&](const std::vector<Tensor>& in) { return sum(checkpoint(fn(in[0]), {in[1]})[0]); },
      {W, x0.detach().set_requires_grad().set_name("x")});
  CHECK_MESSAGE(r.ok(), r);
}

TEST_CASE("checkpoint: random draws inside replay identically, and the generators go on as without") {
  // A cell whose step applies dropout from its own generator and draws from the default one.
  Generator gen(2);
  auto run = [&](bool ckpt) {
    manual_seed(123);
    Dropout drop(0.4, 17);
    Tensor W = Tensor::uniform({4, 4}, -1, 1, *std::make_unique<Generator>(3), float64).set_requires_grad();
    Tensor x = Tensor::uniform({4, 5}, -1, 1, *std::make_unique<Generator>(4), float64).set_requires_grad();
    auto fn = [&](const std::vector<Tensor>& in) {
      Tensor h = in[0];
      for (int k = 0; k < 3; ++k) {
        h = drop(tanh(matmul(W, h)));
        h = h * Tensor::uniform(h.shape(), 0.5, 1.5, default_generator(), float64);
      }
      return std::vector<Tensor>{h};
    };
    Tape tape;
    const Tensor h = ckpt ? checkpoint(fn, {x})[0] : fn({x})[0];
    backward(sum(h * h));
    std::vector<double> out = W.grad().to_vector(), gx = x.grad().to_vector();
    out.insert(out.end(), gx.begin(), gx.end());
    out.push_back(sum(drop(Tensor::ones({1, 8}, float64))).item());  // the dropout stream goes on alike
    out.push_back(default_generator().uniform());
    return out;
  };
  CHECK(run(false) == run(true));
}

TEST_CASE("checkpoint: a gradient-ready hook fires once per parameter, after its gradient is final") {
  Generator gen(12);
  for (bool ckpt : {false, true}) {
    INFO("checkpoint " << ckpt);
    Generator g(7);
    RecurrentOptions o;
    if (ckpt) o.checkpoint = {.on = true, .every = 2};
    Recurrent lstm = LSTM(3, 4, {.dtype = float64}, o, g);
    const Tensor seq = Tensor::uniform({6, 3, 2}, -1, 1, gen, float64);
    std::map<const void*, int> fired;
    std::map<const void*, std::vector<double>> at_fire;
    {
      auto hook = on_grad_ready([&](const Tensor& p) {
        ++fired[p.impl_ptr().get()];
        at_fire[p.impl_ptr().get()] = p.grad().to_vector();
      });
      backward(weighted_loss(lstm.run(split_steps(seq)), 5));
    }
    for (const Tensor& p : lstm.parameters()) {
      CHECK(fired[p.impl_ptr().get()] == 1);
      CHECK(at_fire[p.impl_ptr().get()] == p.grad().to_vector());
    }
  }
}

TEST_CASE("checkpoint: grad() reaches inputs and parameters through it, .grad() untouched") {
  Generator gen(13);
  Tensor W = Tensor::uniform({3, 3}, -1, 1, gen, float64).set_requires_grad();
  Tensor x = Tensor::uniform({3, 2}, -1, 1, gen, float64).set_requires_grad();
  auto fn = [&](const std::vector<Tensor>& in) { return std::vector<Tensor>{tanh(matmul(W, in[0]))}; };
  const std::vector<Tensor> plain = grad({sum(fn({x})[0] * x)}, {W, x});
  const std::vector<Tensor> ck = grad({sum(checkpoint(fn, {x})[0] * x)}, {W, x});
  CHECK(plain[0].to_vector() == ck[0].to_vector());
  CHECK(plain[1].to_vector() == ck[1].to_vector());
  CHECK(!W.grad().defined());
}

TEST_CASE("checkpoint: nested checkpoints, and an output returned twice or an input returned as is") {
  Generator gen(14);
  Tensor W = Tensor::uniform({3, 3}, -1, 1, gen, float64).set_requires_grad();
  const Tensor x0 = Tensor::uniform({3, 2}, -1, 1, gen, float64);
  auto inner = [&](const std::vector<Tensor>& in) {
    Tensor h = tanh(matmul(W, in[0]));
    return std::vector<Tensor>{h, h, in[0]};
  };
  auto outer = [&](const std::vector<Tensor>& in, bool ckpt) {
    std::vector<Tensor> a = ckpt ? checkpoint(inner, in) : inner(in);
    std::vector<Tensor> b = ckpt ? checkpoint(inner, {a[0] + a[1]}) : inner({a[0] + a[1]});
    return std::vector<Tensor>{b[0] * a[2]};
  };
  auto run = [&](bool ckpt) {
    W.zero_grad();
    Tape tape;
    Tensor x = x0.detach().set_requires_grad();
    std::vector<Tensor> out = ckpt ? checkpoint([&](const std::vector<Tensor>& in) { return outer(in, true); }, {x})
                                   : outer({x}, false);
    if (ckpt) CHECK(tape.size() == 1);
    backward(sum(out[0] * out[0]));
    std::vector<double> g = W.grad().to_vector(), gx = x.grad().to_vector();
    g.insert(g.end(), gx.begin(), gx.end());
    return g;
  };
  CHECK(run(false) == run(true));

  Tape tape;
  Tensor x = x0.detach().set_requires_grad();
  const std::vector<Tensor> out = checkpoint(inner, {x});
  CHECK(out[2].same(x));   // an input returned as is comes back as itself
  CHECK(out[0].same(out[1]));  // one value returned twice is one output
  CHECK(tape[0].num_outputs() == 1);
}

TEST_CASE("checkpoint: the explain view shows the re-run under its checkpoint entry") {
  Generator gen(15);
  Tensor W = Tensor::uniform({2, 2}, -1, 1, gen, float64).set_requires_grad().set_name("W");
  Tensor x = Tensor::uniform({2, 1}, -1, 1, gen, float64).set_requires_grad().set_name("x");
  Tape tape;
  auto fn = [&](const std::vector<Tensor>& in) { return std::vector<Tensor>{tanh(matmul(W, tanh(in[0])))}; };
  const Tensor loss = sum(checkpoint(fn, {x})[0]);
  const std::string text = explain_backward(loss);
  CHECK(text.find("checkpoint: re-running 3 entries (#2…#4), swept here:") != std::string::npos);
  CHECK(text.find("re-running its 3 entries under recording") != std::string::npos);  // its rule
  CHECK(text.find("checkpoint: re-run of #0 done") != std::string::npos);
  // The re-run entries come after their checkpoint in the text (the sweep's order), not first.
  CHECK(text.find("#4 tanh") > text.find("#0 checkpoint"));
  // What reached W came from the re-run's matmul.
  CHECK(text.find("#3 matmul(W, #2)") != std::string::npos);
  CHECK(text.find("from #3") != std::string::npos);
}

TEST_CASE("checkpoint: the tape holds O(T/k + k) steps, and nothing is left after the sweep") {
  Generator gen(16);
  auto bytes = [&](bool ckpt, std::size_t T) {
    Generator g(7);
    RecurrentOptions o;
    if (ckpt) o.checkpoint.on = true;
    Recurrent lstm = LSTM(8, 16, {}, o, g);
    const Tensor seq = Tensor::uniform({T, 8, 4}, -1, 1, gen);
    Tape tape;
    const Tensor loss = sum(lstm(seq));
    const TapeStats s = tape_stats(tape);
    backward(loss);
    CHECK(tape.empty());
    return s.bytes;
  };
  const std::size_t plain = bytes(false, 100), ckpt = bytes(true, 100);
  MESSAGE("LSTM(8 => 16), batch 4, 100 steps: " << plain << " bytes of tape values, " << ckpt << " checkpointed");
  // Plain: 7 step tensors a step kept (Tape::drop_unread frees the rest); checkpointed: each step's output and 10 pieces' states (the stack
  // of the outputs for the loss is in both).
  CHECK(ckpt * 3 < plain);
}

TEST_CASE("checkpoint: errors name checkpoint and what is wrong") {
  Generator gen(17);
  Tensor x = Tensor::uniform({2, 2}, -1, 1, gen, float64).set_requires_grad();
  SUBCASE("an empty function") { CHECK_THROWS_AS(checkpoint(CheckpointFn(), {x}), ValueError); }
  SUBCASE("a function that returns nothing") {
    Tape tape;
    CHECK_THROWS_WITH_AS(checkpoint([](const std::vector<Tensor>&) { return std::vector<Tensor>{}; }, {x}),
                         doctest::Contains("checkpoint: the function returned no tensors"), TapeError);
  }
  SUBCASE("an undefined result or input") {
    Tape tape;
    CHECK_THROWS_AS(checkpoint([](const std::vector<Tensor>& in) { return std::vector<Tensor>{in[0] * 2.0, Tensor()}; }, {x}),
                    TapeError);
    CHECK_THROWS_AS(checkpoint([](const std::vector<Tensor>& in) { return in; }, {x, Tensor()}), TapeError);
  }
  SUBCASE("a tensor with history from outside, not passed in") {
    Tape tape;
    const Tensor outside = x * 2.0;
    CHECK_THROWS_WITH_AS(checkpoint([&](const std::vector<Tensor>& in) { return std::vector<Tensor>{in[0] * outside}; }, {x}),
                         doctest::Contains("must be passed in its inputs"), TapeError);
  }
  SUBCASE("the re-run returns another shape") {
    Tape tape;
    int calls = 0;
    auto out = checkpoint(
        [&](const std::vector<Tensor>& in) {
          return std::vector<Tensor>{++calls == 1 ? tanh(in[0]) : tanh(reshape(in[0], {4, 1}))};
        },
        {x});
    CHECK_THROWS_WITH_AS(backward(sum(out[0])), doctest::Contains("output 0 is (4, 1) float64, the first run's (2, 2)"),
                         TapeError);
  }
  SUBCASE("the re-run returns another number of tensors") {
    Tape tape;
    int calls = 0;
    auto out = checkpoint(
        [&](const std::vector<Tensor>& in) {
          std::vector<Tensor> r{tanh(in[0])};
          if (++calls > 1) r.push_back(in[0]);
          return r;
        },
        {x});
    CHECK_THROWS_WITH_AS(backward(sum(out[0])), doctest::Contains("returned 2 tensors, the first run 1"), TapeError);
  }
  SUBCASE("an input changed in place between the runs") {
    Tape tape;
    Tensor data = Tensor::uniform({2, 2}, -1, 1, gen, float64);
    Tensor W = Tensor::uniform({2, 2}, -1, 1, gen, float64).set_requires_grad();
    auto out = checkpoint([&](const std::vector<Tensor>& in) { return std::vector<Tensor>{tanh(matmul(W, in[0]))}; }, {data});
    data.assign(Tensor::zeros({2, 2}, float64));
    CHECK_THROWS_WITH_AS(backward(sum(out[0])), doctest::Contains("differs from the first run's"), TapeError);
  }
}

TEST_CASE("checkpoint: bit for bit with variational dropout, whose recurrent mask the re-runs keep alive") {
  // The recurrent-dropout view of a cell is made for one call; each piece's re-run in the backward
  // holds it (under ASan a dangling one would show here).
  for (Dtype dt : {float64, float32}) {
    INFO(dtype_name(dt));
    const RecurrentOptions variational{.num_layers = 2, .bidirectional = true, .input_dropout = 0.25, .recurrent_dropout = 0.3};
    for (bool masked : {false, true}) {
      INFO("masked " << masked);
      check_identical([&](RecurrentOptions o, Generator& g) { return make_lstm(o, g, dt); }, variational, 3, dt, 8, 3, 3, masked);
      check_identical([&](RecurrentOptions o, Generator& g) { return make_gru(o, g, dt); }, variational, 0, dt, 8, 3, 3, masked);
    }
  }
}

namespace {

// forward() of a model with return_sequences = false, without and with checkpoints: the last outputs,
// the final states and every gradient equal bit for bit.
void check_last_identical(RecurrentOptions options, std::size_t every, Dtype dt, bool masked) {
  options.return_sequences = false;
  Generator g1(3), g2(3);
  Recurrent plain = make_lstm(options, g1, dt);
  options.checkpoint = {.on = true, .every = every};
  Recurrent ckpt = make_lstm(options, g2, dt);
  randomize(plain, 11);
  randomize(ckpt, 11);
  Generator data(5);
  const std::size_t T = 9, batch = 3;
  const Tensor seq = Tensor::uniform({T, 3, batch}, -1, 1, data, dt);
  Tensor mask;
  if (masked) mask = mask_from_lengths({T, 4, 1}, T, dt);
  auto once = [&](Recurrent& r) {
    r.zero_grad();
    Tensor x = seq.detach().set_requires_grad();
    const Tensor y = r(x, mask);
    Generator w(77);
    Tensor loss = sum(y * Tensor::uniform(y.shape(), -1, 1, w, dt));
    for (const State& s : r.final_states())
      for (const Tensor& t : s) loss = loss + sum(t * Tensor::uniform(t.shape(), -1, 1, w, dt));
    std::vector<std::vector<double>> out{y.to_vector()};
    backward(loss);
    out.push_back(x.grad().to_vector());
    for (const Tensor& p : r.parameters()) out.push_back(p.grad().to_vector());
    return out;
  };
  const auto a = once(plain), b = once(ckpt);
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO("item " << i << " (0: the last outputs, 1: d/dx, then the parameters' gradients)");
    CHECK(!a[i].empty());
    CHECK(a[i] == b[i]);
  }
}

}  // namespace

TEST_CASE("checkpoint: return_sequences = false, the last outputs and gradients bit for bit") {
  for (Dtype dt : {float64, float32}) {
    INFO(dtype_name(dt));
    for (bool masked : {false, true}) {
      INFO("masked " << masked);
      check_last_identical({}, 2, dt, masked);
      check_last_identical({.num_layers = 2, .bidirectional = true}, 4, dt, masked);
      check_last_identical({.bidirectional = true, .merge = Merge::sum}, 0, dt, masked);
    }
  }
}

TEST_CASE("checkpoint: the per-step outputs are not kept when they are not returned, nor beside their stack") {
  const DropAtAnySize drop_at_any_size;
  // LSTM(8 => 16), batch 4, 100 steps in 10 pieces: one step's output is 256 bytes.
  auto bytes = [](bool ckpt, bool sequences) {
    Generator g(7), data(16);
    RecurrentOptions o;
    o.checkpoint.on = ckpt;
    o.return_sequences = sequences;
    Recurrent lstm = LSTM(8, 16, {}, o, g);
    const Tensor seq = Tensor::uniform({100, 8, 4}, -1, 1, data);
    Tape tape;
    const Tensor loss = sum(lstm(seq));
    const std::size_t b = tape_stats(tape).bytes;
    backward(loss);
    CHECK(tape.empty());
    return b;
  };
  const std::size_t step_output = 16 * 4 * sizeof(float), T = 100;
  const std::size_t last = bytes(true, false), sequences = bytes(true, true);
  MESSAGE("checkpointed LSTM(8 => 16), batch 4, 100 steps: " << last << " bytes of tape values for the last output, "
          << sequences << " for the whole sequence; not checkpointed " << bytes(false, false) << " and "
          << bytes(false, true));
  // The last output: each piece's state (h, c) and `last`, and its inputs — no per-step output.
  CHECK(last < T * step_output);
  // The sequence: its stack (T outputs), the pieces' states and inputs — not the T outputs besides.
  CHECK(sequences >= T * step_output + last);
  CHECK(sequences < 2 * T * step_output);
}
