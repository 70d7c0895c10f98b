// examples/tour.cpp — a tour of recurrence, following Flux's "Recurrent Models" docs (the seeds):
//
//   1. an RNN cell written by hand from primitives:  h = tanh(Wxh x + Whh h + b)
//   2. the same cell as rwd::RNNCell, given the same weights — the two agree
//   3. a stateful Chain(RNN(2 => 5), Dense(5 => 1)): the output changes for the same input; reset()
//   4. the layout: a step is (features, batch), a sequence is a vector of steps or (time, features, batch)
//   5. losses over a sequence: seq-to-seq (every step), seq-to-one (the last step), skipping the first
//      step, and warm-up on a prefix before training on the continuation
//   6. one training run with Adam on a generated 3-to-1 task, with progress, CSV history and plots
//   7. a gradient check of the trained model, float32 against its float64 shadow, printed as a report
//
//   bash scripts/example.sh tour            # the full run (a few seconds)
//   bash scripts/example.sh tour --quick    # a few batches
#include "common/example.hpp"

#include <cmath>
#include <cstdio>
#include <iostream>
#include <vector>

using namespace rwd;

namespace {

/// A tensor's values on one line, "[0.1234, -0.5678]" (any shape, row-major).
std::string values(const Tensor& t) {
  std::string s = "[";
  const std::vector<double> v = t.to_vector();
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + ex::num(v[i], "%.4f");
  return s + "]";
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to_vector(), y = b.to_vector();
  double m = 0;
  for (std::size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

void section(const char* title) { std::cout << "\n== " << title << " ==\n"; }

/// A batch of sequences: `steps` (features, batch) inputs and their targets.
struct Batch {
  std::vector<Tensor> xs;  // one (2, batch) tensor per time step
  Tensor y;                // (1, batch)
};

/// The 3-to-1 task: two features per step, uniform in [0, 1); the target is the running difference
/// Σ_t (x_t[0] − x_t[1]) after the last step — every step matters, so the state must carry it.
Batch make_batch(std::size_t batch, std::size_t steps, Generator& gen) {
  Batch b;
  std::vector<double> y(batch, 0.0);
  for (std::size_t t = 0; t < steps; ++t) {
    Tensor x = Tensor::uniform({2, batch}, 0, 1, gen);
    const std::vector<double> v = x.to_vector();  // row 0 then row 1
    for (std::size_t j = 0; j < batch; ++j) y[j] += v[j] - v[batch + j];
    b.xs.push_back(x);
  }
  b.y = Tensor::from_vector(y, {1, batch});
  return b;
}

}  // namespace

int run(int argc, char** argv) {
  ex::Args args(argc, argv, "tour");
  const auto start = std::chrono::steady_clock::now();
  Generator gen(args.seed);
  bool ok = true;

  // ---------------------------------------------------------------------------------------------
  section("1. an RNN cell by hand: h = tanh(Wxh x + Whh h + b)");
  // Flux's `rnn_cell(h, x)`. A step is a (features, batch) matrix; here a batch of one column.
  Tensor Wxh = Tensor::randn({5, 2}, gen), Whh = Tensor::randn({5, 5}, gen), b = Tensor::randn({5, 1}, gen);
  auto rnn_cell = [&](const Tensor& h, const Tensor& x) {
    Tensor h_next = tanh(matmul(Wxh, x) + matmul(Whh, h) + b);
    return std::pair{h_next, h_next};  // (new state, output): for this cell they are the same
  };
  const Tensor x = Tensor::uniform({2, 1}, 0, 1, gen);   // dummy data
  const Tensor h0 = Tensor::uniform({5, 1}, 0, 1, gen);  // initial hidden state
  std::cout << "x = " << values(x) << "\n";
  std::vector<Tensor> hand;  // the outputs of three calls with the same x
  Tensor h = h0;
  for (int k = 0; k < 3; ++k) {
    auto [h_next, y] = rnn_cell(h, x);
    h = h_next;
    hand.push_back(y);
    std::cout << "call " << k + 1 << ": y = " << values(y) << "\n";
  }
  std::cout << "Same x, different y: the state h carries the previous calls.\n";

  // ---------------------------------------------------------------------------------------------
  section("2. the same with RNNCell");
  // RNNCell computes tanh(W_ih x + b_ih + W_hh h + b_hh) — PyTorch's parameters. Give it our weights
  // (b_ih = b, b_hh = 0) and it must produce the same numbers.
  RNNCell cell(2, 5, "tanh", {}, gen);
  cell.weight_ih.assign(Wxh);
  cell.weight_hh.assign(Whh);
  cell.bias_ih.assign(reshape(b, {5}));
  cell.bias_hh.fill(0);
  std::cout << cell.repr() << "\n";
  double cell_diff = 0;
  State state{h0};
  for (int k = 0; k < 3; ++k) {
    auto [y, next] = cell.step(x, state);
    state = next;
    cell_diff = std::max(cell_diff, max_abs_diff(y, hand[k]));
    std::cout << "call " << k + 1 << ": y = " << values(y) << "\n";
  }
  std::cout << "max |RNNCell − hand-written| over the three calls: " << ex::num(cell_diff, "%.3g") << "\n";
  if (cell_diff > 1e-6) {
    std::cout << "FAIL: RNNCell disagrees with the hand-written cell\n";
    ok = false;
  }

  // ---------------------------------------------------------------------------------------------
  section("3. a stateful model: Chain(RNN(2 => 5), Dense(5 => 1))");
  // RNN(2, 5) wraps an RNNCell and keeps its state between calls (Flux's Recur): each call is the
  // next time step. Nothing here trains, so nothing needs recording.
  Chain m(RNN(2, 5, "tanh", {}, gen), Dense(5, 1, {}, true, Dtype::f32, gen));
  std::cout << m.summary();
  {
    NoGradGuard no_grad;
    const Tensor x_t1 = Tensor::from_vector(std::vector<double>{1, 2}, {2});  // a (2,) vector: one example
    std::vector<double> ys;
    for (int k = 0; k < 4; ++k) ys.push_back(m(x_t1).item());
    std::cout << "m([1, 2]) four times: ";
    for (double v : ys) std::cout << ex::num(v, "%.5f") << "  ";
    std::cout << "\n";
    reset(m);  // Flux's reset!: back to the initial state
    const double again = m(x_t1).item();
    std::cout << "after reset(m):       " << ex::num(again, "%.5f") << "  (the first call's value again)\n";
    if (again != ys[0]) {
      std::cout << "FAIL: reset did not bring the state back\n";
      ok = false;
    }

    // -------------------------------------------------------------------------------------------
    section("4. layout: a step is (features, batch)");
    // Four independent sequences of 3 steps: each step is a (2, 4) matrix, one column per sequence.
    Batch demo = make_batch(4, 3, gen);
    reset(m);
    std::cout << "a sequence as a vector of " << demo.xs.size() << " steps of shape " << demo.xs[0].shape() << "\n";
    for (std::size_t t = 0; t < demo.xs.size(); ++t) {
      const Tensor y = m(demo.xs[t]);
      std::cout << "  m(x[" << t << "]) -> " << y.shape() << " " << values(y) << "\n";
    }
    reset(m);
    // The same sequence as one (time, features, batch) tensor: x[t] is a contiguous (features, batch) slice.
    const Tensor seq = stack_steps(demo.xs);
    std::cout << "as one tensor: " << seq.shape() << " (time, features, batch); split_steps gives back "
              << split_steps(seq).size() << " steps of " << split_steps(seq)[0].shape() << "\n";
    // The RNN layer alone also takes the whole sequence in one call, and gives every step's h.
    Tensor hs = m[0](seq);
    std::cout << "m[0](seq), the RNN layer over the whole sequence: " << hs.shape() << "\n";
    reset(m);
  }
  // ---------------------------------------------------------------------------------------------
  section("5. losses over a sequence");
  // seq-to-seq: every step has a target and contributes to the loss. reset() first: the sequences of
  // a batch are independent of the previous batch.
  auto seq_to_seq = [&](const std::vector<Tensor>& xs, const std::vector<Tensor>& ys) {
    reset(m);
    Tensor loss = Tensor::scalar(0.0);
    for (std::size_t t = 0; t < xs.size(); ++t) loss = loss + mse_loss(m(xs[t]), ys[t]);
    return loss;
  };
  // seq-to-one (the seeds' loss_3_to_1): run every step, score only the last output.
  auto seq_to_one = [&](const std::vector<Tensor>& xs, const Tensor& y) {
    reset(m);
    for (std::size_t t = 0; t + 1 < xs.size(); ++t) m(xs[t]);  // updates the state; output ignored
    return mse_loss(m(xs.back()), y);
  };
  // Skipping the first step: it only sets the state; targets start at step 2 (one fewer target).
  auto skip_first = [&](const std::vector<Tensor>& xs, const std::vector<Tensor>& ys) {
    reset(m);
    m(xs[0]);
    Tensor loss = Tensor::scalar(0.0);
    for (std::size_t t = 1; t < xs.size(); ++t) loss = loss + mse_loss(m(xs[t]), ys[t - 1]);
    return loss;
  };
  {
    NoGradGuard no_grad;
    Batch d = make_batch(4, 3, gen);
    std::vector<Tensor> ys3, ys2;
    for (int t = 0; t < 3; ++t) ys3.push_back(Tensor::uniform({1, 4}, 0, 1, gen));
    ys2 = {ys3[1], ys3[2]};
    std::cout << "seq-to-seq (3 targets):         " << ex::num(seq_to_seq(d.xs, ys3).item()) << "\n"
              << "seq-to-one (last step):         " << ex::num(seq_to_one(d.xs, d.y).item()) << "\n"
              << "first step skipped (2 targets): " << ex::num(skip_first(d.xs, ys2).item()) << "\n";
  }

  // Warm-up (the seeds' seq_init): run a prefix once to set the state, then train on the
  // continuation, one window after another, without reset — the state flows from window to window.
  // The warm-up runs without recording, so its state is a starting value, not something to train;
  // after each backward the carried state keeps its value and drops its history.
  {
    reset(m);
    Batch cont = make_batch(1, 7, gen);  // one continuous sequence: 1 warm-up step + 2 windows of 3
    {
      NoGradGuard no_grad;
      m(cont.xs[0]);
    }
    const std::vector<std::vector<Tensor>> windows = {{cont.xs[1], cont.xs[2], cont.xs[3]},
                                                      {cont.xs[4], cont.xs[5], cont.xs[6]}};
    std::vector<std::vector<Tensor>> targets(2);
    for (auto& w : targets)
      for (int t = 0; t < 3; ++t) w.push_back(Tensor::uniform({1, 1}, 0, 1, gen));
    Adam warm_opt(m.parameters(), {.lr = 1e-3});
    std::cout << "warm-up on 1 step, then 1 epoch over 2 windows of its continuation (no reset):\n";
    fit(warm_opt, 2,
        [&](std::size_t, std::size_t w) {
          Tensor loss = Tensor::scalar(0.0);
          for (std::size_t t = 0; t < 3; ++t) loss = loss + mse_loss(m(windows[w][t]), targets[w][t]);
          return loss;
        },
        {.epochs = 1, .out = &std::cout});
    reset(m);
  }

  // ---------------------------------------------------------------------------------------------
  section("6. training with Adam: the 3-to-1 running difference");
  // y = Σ_t (x_t[0] − x_t[1]) over 3 steps, from the seeds' 3-to-1 setting: a fresh model, batches of
  // 32 independent sequences, the seq-to-one loss, validation on 256 held-out sequences.
  Chain model(RNN(2, 5, "tanh", {}, gen), Dense(5, 1, {}, true, Dtype::f32, gen));
  const std::size_t batch = 32, n_batches = args.quick ? 4 : 32, epochs = args.quick ? 3 : 80;
  std::vector<Batch> train;
  for (std::size_t k = 0; k < n_batches; ++k) train.push_back(make_batch(batch, 3, gen));
  const Batch val = make_batch(256, 3, gen);

  auto predict = [&](const std::vector<Tensor>& xs) {
    reset(model);
    Tensor y;
    for (const Tensor& x_t : xs) y = model(x_t.to(model.parameters()[0].dtype()));
    return y;
  };
  auto loss_3_to_1 = [&](const Batch& bt) { return mse_loss(predict(bt.xs), bt.y.to(model.parameters()[0].dtype())); };

  Adam opt(model.parameters(), {.lr = 0.01});
  std::cout << model.repr() << ", " << model.num_parameters() << " parameters; " << opt.str() << "\n";
  const double val_before = [&] {
    NoGradGuard no_grad;
    return loss_3_to_1(val).item();
  }();
  History history = fit(opt, n_batches, [&](std::size_t, std::size_t k) { return loss_3_to_1(train[k]); },
                        {.epochs = epochs, .validate = [&] { return loss_3_to_1(val).item(); }, .out = &std::cout});
  history.write_csv(args.path("history.csv"));
  ex::plot_history(args.path("loss.png"), "tour: Chain(RNN(2 => 5), Dense(5 => 1)) on the 3-to-1 task (MSE)", history);
  const double val_mse = history.epochs.back().val_loss;
  std::cout << "validation MSE " << ex::num(val_before) << " before training -> " << ex::num(val_mse) << " after\n";
  {
    NoGradGuard no_grad;
    const std::vector<double> pred = predict(val.xs).to_vector(), target = val.y.to_vector();
    ex::plot(args.path("predictions.png"), "tour: prediction against target, 256 validation sequences", "target",
             "prediction", {{"validation sequences", pred, target, "points"}, {"y = x", {-2.5, 2.5}, {-2.5, 2.5}, "lines"}});
  }
  if (!args.quick && !(val_mse < 0.1 * val_before)) {
    std::cout << "FAIL: the validation MSE did not fall below a tenth of its start\n";
    ok = false;
  }

  // ---------------------------------------------------------------------------------------------
  section("7. gradient check of the model");
  // Every parameter of the (float32) model, checked against central differences in float64: gradcheck
  // promotes the parameters to float64 in place, so the loss below runs in float64 (predict converts
  // the inputs to the parameters' dtype), then compares the float32 gradient with that float64 one.
  // Parameters are named by their own field ("weight"); the report reads better with the model's keys.
  for (auto& [key, p] : model.named_parameters()) p.set_name(key);
  const Batch small = make_batch(4, 3, gen);
  GradcheckReport report = gradcheck([&](const std::vector<Tensor>&) { return loss_3_to_1(small); }, model.parameters());
  std::cout << report << "\n";
  if (!report) ok = false;

  std::cout << "wall time " << ex::num(ex::seconds_since(start), "%.2f") << " s\n";
  ex::result({{"example", "tour"},
              {"final_loss", ex::num(history.final_loss())},
              {"val_mse", ex::num(val_mse)},
              {"gradcheck", report ? "pass" : "fail"}});
  return ok ? 0 : 1;
}

int main(int argc, char** argv) { return ex::guard("tour", [&] { return run(argc, argv); }); }
