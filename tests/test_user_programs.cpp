// The programs new users wrote from README.md and docs/tutorial.md alone (issue 14), rewritten the
// same way — public API only (<rewind.hpp>) — each checking what its user needed to be true. The
// fifth, a Hessian-vector product checked by finite differences, is examples/hvp.cpp (run by CTest).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <tuple>
#include <vector>

#include <rewind.hpp>

#include "support.hpp"

using namespace rwd;

namespace {

// A leaky ReLU as a custom primitive; the wrong backward forgets the slope where x < 0.
Tensor leaky(const Tensor& x, bool wrong) {
  return custom_op(
      wrong ? "leaky_wrong" : "leaky", {x},
      [](const std::vector<Tensor>& in) { return where(gt(in[0], 0.0), in[0], in[0] * 0.1); },
      [wrong](BackwardContext& c) {
        const Tensor slope = where(gt(c.input(0), 0.0), Tensor::scalar(1.0, float64), Tensor::scalar(wrong ? 1.0 : 0.1, float64));
        c.accumulate(0, c.grad_out() * slope);
      });
}

}  // namespace

TEST_CASE("user program: a custom op with a broken backward — gradcheck shows where, and names the op") {
  Generator gen(11);
  Dense in(3, 4, {}, true, float64, gen), out(4, 1, {}, true, float64, gen);
  for (auto& [key, p] : in.named_parameters()) p.set_name("in." + key);
  for (auto& [key, p] : out.named_parameters()) p.set_name("out." + key);
  const Tensor x = Tensor::uniform({3, 5}, -1, 1, gen, float64), y = Tensor::uniform({1, 5}, -1, 1, gen, float64);
  auto model = [&](bool wrong) {
    return [&, wrong](const std::vector<Tensor>&) { return mse_loss(out(leaky(in(x), wrong)), y); };
  };
  std::vector<Tensor> params = in.parameters();
  for (const Tensor& p : out.parameters()) params.push_back(p);

  const GradcheckReport bad = gradcheck(model(true), params);
  CHECK_FALSE(bad);
  const InputReport& w = bad.inputs[0];  // in.weight: every path to the loss goes through leaky_wrong
  REQUIRE_FALSE(w.ok());
  // The failing elements come with the input's value.
  CHECK(contains(bad.str(), "(value "));
  // The report names the entries that use the weight and the op where the error enters.
  REQUIRE(w.used_by.size() == 1);
  CHECK(contains(w.used_by[0], "affine"));  // Dense: W·x + b as one entry
  REQUIRE(w.suspects.size() == 1);
  CHECK(contains(w.suspects[0], "leaky_wrong"));
  CHECK(contains(bad.str(), "the error enters at " + w.suspects[0]));
  // out.weight's gradient does not go through the broken op: it passes, and nothing is named.
  CHECK(bad.inputs[2].ok());
  CHECK(bad.inputs[2].suspects.empty());

  const GradcheckReport good = gradcheck(model(false), params);
  CHECK(good);
  for (const InputReport& r : good.inputs) CHECK(r.suspects.empty());
}

TEST_CASE("user program: gradcheck blames the broken op, not an innocent op on another path") {
  // h1 = leaky_wrong(W x); loss = Σ (h1 + tanh(W h1))·v: h1's adjoint is wrong (it comes partly
  // through the second leaky_wrong), while the add that reads h1 receives a right one — and is innocent.
  Generator gen(12);
  Tensor W = Tensor::uniform({3, 3}, -1, 1, gen, float64).set_requires_grad().set_name("W");
  const Tensor x = Tensor::uniform({3, 2}, -1, 1, gen, float64), v = Tensor::uniform({3, 2}, -1, 1, gen, float64);
  auto f = [&](const std::vector<Tensor>&) {
    const Tensor h1 = leaky(matmul(W, x), true);
    const Tensor h2 = leaky(matmul(W, h1), true);
    return sum((h1 + h2) * v);
  };
  const GradcheckReport r = gradcheck(f, {W});
  REQUIRE_FALSE(r);
  REQUIRE_FALSE(r.inputs[0].suspects.empty());
  for (const std::string& s : r.inputs[0].suspects) CHECK(contains(s, "leaky_wrong"));
}

TEST_CASE("user program: a padded bidirectional-GRU classifier trains, saves, loads and resumes exactly") {
  // Token sequences of lengths 2 … 7 over tokens 1 … 5 (0 pads); the label: does token 5 occur.
  Generator data_gen(13);
  const std::size_t n = 48, batch = 16, vocab = 6, T = 7;
  std::vector<std::vector<double>> seqs(n);
  Indices labels(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t len = 2 + data_gen.integer(6);
    for (std::size_t t = 0; t < len; ++t) seqs[i].push_back(double(1 + data_gen.integer(5)));
    labels[i] = std::find(seqs[i].begin(), seqs[i].end(), 5.0) != seqs[i].end();
  }
  // Batch b of epoch e: a shuffle seeded by the epoch, so a resumed run sees the same batches.
  auto batch_of = [&](std::size_t epoch, std::size_t b) {
    Generator g(100 + epoch);
    std::vector<std::size_t> order(n);
    for (std::size_t i = 0; i < n; ++i) order[i] = i;
    for (std::size_t i = n; i > 1; --i) std::swap(order[i - 1], order[g.integer(i)]);
    std::vector<double> ids(T * batch, 0.0);
    std::vector<std::size_t> lengths;
    Indices y;
    for (std::size_t j = 0; j < batch; ++j) {
      const std::size_t i = order[b * batch + j];
      for (std::size_t t = 0; t < seqs[i].size(); ++t) ids[t * batch + j] = seqs[i][t];
      lengths.push_back(seqs[i].size());
      y.push_back(labels[i]);
    }
    return std::tuple{Tensor::from_vector(ids, {T, batch}), mask_from_lengths(lengths, T), y};
  };
  auto make = [&](std::uint32_t seed) {
    Generator gen(seed);
    return Chain(Embedding(vocab, 8, float32, gen),
                 GRU(8, 8, {}, {.bidirectional = true, .return_sequences = false}, gen), Dense(16, 2, {}, true, float32, gen));
  };
  auto train = [&](Chain& model, Adam& opt, std::size_t from, std::size_t to) {
    auto accuracy = [&] {
      std::size_t right = 0;
      for (std::size_t b = 0; b < n / batch; ++b) {
        auto [ids, mask, y] = batch_of(0, b);
        const Indices predicted = argmax(model(ids, mask), 0);
        for (std::size_t j = 0; j < batch; ++j) right += predicted[j] == y[j];
      }
      return double(right) / double(n);
    };
    return fit(opt, n / batch, [&](std::size_t epoch, std::size_t b) {
      auto [ids, mask, y] = batch_of(epoch, b);
      return cross_entropy(model(ids, mask), y);
    }, {.epochs = to, .initial_epoch = from, .metrics = {{"accuracy", accuracy}}});
  };

  Chain straight = make(1);
  Adam opt_straight(straight.parameters(), {.lr = 0.03});
  const History all = train(straight, opt_straight, 0, 30);
  CHECK(all.epochs.back().metric("accuracy") >= 0.9);
  CHECK(all.epochs.back().loss < all.epochs.front().loss);

  const std::string path = (std::filesystem::temp_directory_path() / "rewind_user_classifier.npz").string();
  {
    Chain first = make(1);
    Adam opt(first.parameters(), {.lr = 0.03});
    train(first, opt, 0, 12);
    save_checkpoint(path, first, opt);
  }
  Chain resumed = make(2);  // other initial weights: everything must come from the file
  Adam opt(resumed.parameters(), {.lr = 0.03});
  load_checkpoint(path, resumed, opt);
  const History rest = train(resumed, opt, 12, 30);
  std::filesystem::remove(path);
  REQUIRE(rest.epochs.size() == 18);
  CHECK(rest.epochs.front().epoch == 13);
  const auto a = straight.named_parameters(), b = resumed.named_parameters();
  for (std::size_t k = 0; k < a.size(); ++k) {
    CAPTURE(a[k].first);
    CHECK(a[k].second.to_vector() == b[k].second.to_vector());  // bit for bit
  }
}

TEST_CASE("user program: a 3-step RNN walked through — named values and time steps in every view") {
  Generator gen(14);
  Recurrent rnn = RNN(1, 2, "tanh", {.dtype = float64}, gen);
  for (auto& [key, p] : rnn.named_parameters()) p.set_name(key);
  const Tensor x = Tensor::from_vector({0.5, -1.0, 0.25}, {3, 1, 1}, float64);
  Tape tape;
  RecurrentRun run = rnn.run(split_steps(x));
  run.outputs[1].set_name("h1");
  const Tensor loss = sum(run.last * run.last).set_name("loss");
  const std::string printed = print_tape(tape);
  CHECK(contains(printed, "  t  op"));  // a column of time steps
  CHECK(contains(printed, "#5:h1     1  tanh"));  // the named intermediate, at step 1
  // Each step's share of the gradient, then the sweep explained entry by entry.
  const std::vector<double> flow = gradient_flow(loss, run.outputs);
  REQUIRE(flow.size() == 3);
  CHECK(flow[2] > 0);
  CHECK(flow[0] > 0);
  const std::string explained = explain_backward(loss);
  CHECK(contains(explained, "t=1"));
  CHECK(contains(explained, "from #"));  // the adjoint of h₁ summed over its uses
  const std::string dot = to_dot(tape, {.top_to_bottom = true});
  CHECK(contains(dot, "rankdir=TB"));
  CHECK(contains(dot, "label=\"t=2"));
}

TEST_CASE("user program: a Flux-style stateful model learns a delayed echo with TBPTT(k1, k2 > k1)") {
  // y_t = x_{t−3} on one long ±1 sequence; a gradient must reach 3 steps back. The state is carried
  // across windows (Flux's Recur); TBPTT(4, 8) updates every 4 steps through the last 8.
  Generator gen(15);
  const std::size_t steps = 1500, delay = 3;
  std::vector<Tensor> xs, ys;
  std::vector<double> bits(steps);
  for (double& b : bits) b = gen.uniform() < 0.5 ? -1.0 : 1.0;
  for (std::size_t t = 0; t < steps; ++t) {
    xs.push_back(Tensor::from_vector({bits[t]}, {1, 1}));
    ys.push_back(Tensor::from_vector({t >= delay ? bits[t - delay] : 0.0}, {1, 1}));
  }
  Chain model(RNN(1, 12, "tanh", {}, gen), Dense(12, 1, {}, true, float32, gen));
  Adam opt(model.parameters(), {.lr = 0.01});
  double first = 0, last = 0;
  for (int pass = 0; pass < 4; ++pass) {
    reset(model);
    last = train_truncated(model, opt, steps, [&](std::size_t t) { return mse_loss(model(xs[t]), ys[t]); },
                           {.k1 = 4, .k2 = 8});
    if (pass == 0) first = last;
  }
  CAPTURE(first);
  CAPTURE(last);
  CHECK(last < 0.1);  // from about 1 (the variance of ±1) to a learnt echo
}

TEST_CASE("Tape output probe: nudges one element of one entry, and refuses what it cannot nudge, naming it") {
  Generator gen(1);
  const Tensor a = Tensor::uniform({2, 3}, -1, 1, gen, float64).set_requires_grad();
  {
    Tape tape;
    const Tape::OutputProbe probe{1, 4, 0.5};  // entry #1, element [1, 1]
    tape.set_output_probe(&probe);
    const Tensor y = a * 2.0;  // #0: untouched
    const Tensor z = y + 1.0;  // #1: nudged as it is recorded
    CHECK(y.at({1, 1}) == a.at({1, 1}) * 2.0);
    CHECK(z.at({1, 1}) == a.at({1, 1}) * 2.0 + 1.0 + 0.5);
    CHECK(z.at({0, 0}) == a.at({0, 0}) * 2.0 + 1.0);
  }
  {
    Tape tape;
    const Tape::OutputProbe probe{0, 0, 1e-6};
    tape.set_output_probe(&probe);
    // A view shares its base's storage: nudging it would nudge the base too.
    CHECK(contains(message_of<TapeError>([&] { (void)reshape(a, {3, 2}); }), "#0 (reshape)"));
  }
  {
    Tape tape;
    const Tape::OutputProbe probe{0, 7, 1e-6};
    tape.set_output_probe(&probe);
    CHECK(contains(message_of<TapeError>([&] { (void)(a * 2.0); }), "at element 7"));  // 6 elements
  }
  {
    Tape tape;
    const Tape::OutputProbe probe{0, 0, 1e-6};
    tape.set_output_probe(&probe);
    const Tensor b = Tensor::uniform({2}, -1, 1, gen, float32).set_requires_grad();
    CHECK(contains(message_of<TapeError>([&] { (void)(b * 2.0f); }), "cannot be nudged"));
  }
}
