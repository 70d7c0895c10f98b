// The Flux workflows of the seeds, as written there (001: "Working with sequences"), each checked
// against an independent computation: explicit cell steps, or the same model run another way.
#include <doctest/doctest.h>

#include <cmath>
#include <tuple>
#include <vector>

#include <rewind.hpp>

using namespace rwd;

namespace {

struct Model {
  Generator gen{21};
  Chain m{RNN(2, 5, "tanh", {.dtype = float64}, gen), Dense(5, 1, {}, true, float64, gen)};
  RNNCell& cell() { return static_cast<RNNCell&>(static_cast<Recurrent&>(m[0]).cell(0)); }
  Dense& dense() { return static_cast<Dense&>(m[1]); }
  // One explicit step of the same model from state h: (y, h').
  std::pair<Tensor, Tensor> step(const Tensor& x, const Tensor& h) {
    auto [y, s] = cell().step(x, {h});
    return {dense()(y), s[0]};
  }
};

std::vector<Tensor> steps(std::size_t n, std::size_t features, std::size_t batch, Generator& gen) {
  std::vector<Tensor> xs;
  for (std::size_t i = 0; i < n; ++i) xs.push_back(Tensor::uniform({features, batch}, -1, 1, gen, float64));
  return xs;
}

double sum_mse(Model& M, const std::vector<Tensor>& xs, const std::vector<Tensor>& ys, std::size_t from, Tensor h) {
  double total = 0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    auto [y, h2] = M.step(xs[i], h);
    h = h2;
    if (i >= from) total += mse_loss(y, ys[i - from]).item();
  }
  return total;
}

}  // namespace

TEST_CASE("workflow: seq-to-seq — a loss over every step, with gradients through time") {
  Model M;
  Generator gen(1);
  auto xs = steps(3, 2, 4, gen), ys = steps(3, 1, 4, gen);
  auto loss = [&] {
    reset(M.m);
    Tensor l = Tensor::scalar(0.0, float64);
    for (std::size_t i = 0; i < xs.size(); ++i) l = l + mse_loss(M.m(xs[i]), ys[i]);  // explicit loop, as Flux asks
    return l;
  };
  CHECK(loss().item() == doctest::Approx(sum_mse(M, xs, ys, 0, Tensor::zeros({5, 4}, float64))));
  GradcheckReport r = gradcheck([&](const std::vector<Tensor>&) { return loss(); }, M.m.parameters());
  CHECK_MESSAGE(r.ok(), r.str());
}

TEST_CASE("workflow: skipping the first step — its output is ignored but it updates the state") {
  Model M;
  Generator gen(2);
  auto xs = steps(3, 2, 1, gen), ys = steps(2, 1, 1, gen);
  Tensor x1 = xs[0].clone().set_requires_grad().set_name("x1");
  auto loss = [&] {
    reset(M.m);
    M.m(x1);  // ignores the output but updates the hidden state
    Tensor l = mse_loss(M.m(xs[1]), ys[0]);
    return l + mse_loss(M.m(xs[2]), ys[1]);
  };
  CHECK(loss().item() == doctest::Approx(sum_mse(M, xs, ys, 1, Tensor::zeros({5, 1}, float64))));
  // x₁ reaches the loss only through the state: its gradient is non-zero and right.
  GradcheckReport r = gradcheck([&](const std::vector<Tensor>&) { return loss(); }, {x1});
  CHECK_MESSAGE(r.ok(), r.str());
  CHECK(r.inputs[0].worst[0].numeric != 0.0);
}

TEST_CASE("workflow: seq-to-one — feed the steps, the loss on the last output") {
  Model M;
  Generator gen(3);
  auto xs = steps(4, 2, 3, gen);
  Tensor target = Tensor::uniform({1, 3}, -1, 1, gen, float64);
  reset(M.m);
  Tensor last;
  for (const Tensor& x : xs) last = M.m(x);
  const double stepped = mse_loss(last, target).item();
  // The same through the whole-sequence layer, last output only.
  Recurrent& rnn = static_cast<Recurrent&>(M.m[0]);
  RecurrentOptions o = rnn.options();
  o.return_sequences = false;
  Recurrent whole(2, [&](std::size_t, std::size_t) { return std::shared_ptr<Cell>(&M.cell(), [](Cell*) {}); }, o);
  const double at_once = mse_loss(M.dense()(whole(stack_steps(xs))), target).item();
  CHECK(stepped == doctest::Approx(at_once).epsilon(1e-14));
}

TEST_CASE("workflow: warm-up on a prefix, then training on the continuation") {
  Model M;
  Generator gen(4);
  auto seq_init = steps(1, 2, 1, gen), seq_1 = steps(3, 2, 1, gen), seq_2 = steps(3, 2, 1, gen);
  auto y1 = steps(3, 1, 1, gen), y2 = steps(3, 1, 1, gen);
  // The expected run, by hand: warm-up state, then seq_1 from it, then seq_2 from seq_1's end.
  Tensor h = Tensor::zeros({5, 1}, float64);
  for (const Tensor& x : seq_init) h = M.step(x, h).second;
  const Tensor h_warm = h.detach();

  reset(M.m);
  for (const Tensor& x : seq_init) M.m(x);  // warm-up: no loss
  Adam opt(M.m.parameters(), {.lr = 1e-3});
  auto loss = [&](const std::vector<Tensor>& xs, const std::vector<Tensor>& ys) {
    Tensor l = Tensor::scalar(0.0, float64);
    for (std::size_t i = 0; i < xs.size(); ++i) l = l + mse_loss(M.m(xs[i]), ys[i]);
    return l;
  };
  opt.zero_grad();
  Tensor l1 = loss(seq_1, y1);
  CHECK(l1.item() == doctest::Approx(sum_mse(M, seq_1, y1, 0, h_warm)));  // seq_1 started from the warm-up state
  l1.backward();
  opt.step();
  // The state flowed on (no reset): seq_2 continues from where seq_1 ended, under the new weights.
  Tensor h_end = h_warm;
  for (const Tensor& x : seq_1) h_end = M.step(x, h_end).second;  // recomputed with the updated weights
  const Tensor carried = static_cast<Recurrent&>(M.m[0]).layer(0).state()[0].detach();
  opt.zero_grad();
  Tensor l2 = loss(seq_2, y2);
  CHECK(l2.item() == doctest::Approx(sum_mse(M, seq_2, y2, 0, carried)));
  CHECK(carried.to_vector() != h_end.to_vector());  // it is the value computed before the update, carried as is
  // The boundary: seq_2's loss has no path back into seq_1's inputs or the warm-up.
  CHECK(carried.is_leaf());
}

TEST_CASE("workflow: reset inside the loss makes batches of independent sequences independent") {
  Model M;
  Generator gen(5);
  auto xa = steps(3, 2, 4, gen), xb = steps(3, 2, 4, gen), ya = steps(3, 1, 4, gen), yb = steps(3, 1, 4, gen);
  auto loss = [&](const std::vector<Tensor>& xs, const std::vector<Tensor>& ys) {
    reset(M.m);  // independent sequences
    Tensor l = Tensor::scalar(0.0, float64);
    for (std::size_t i = 0; i < xs.size(); ++i) l = l + mse_loss(M.m(xs[i]), ys[i]);
    return l.item();
  };
  const double b_fresh = loss(xb, yb);
  loss(xa, ya);
  CHECK(loss(xb, yb) == b_fresh);  // exactly: nothing of batch a leaked into batch b
  // And without the reset, it would have leaked.
  reset(M.m);
  for (const Tensor& x : xa) M.m(x);
  Tensor l = Tensor::scalar(0.0, float64);
  for (std::size_t i = 0; i < xb.size(); ++i) l = l + mse_loss(M.m(xb[i]), yb[i]);
  CHECK(l.item() != b_fresh);
}

TEST_CASE("workflow: a batch is (features, batch) — each column is its own sequence") {
  Model M;
  Generator gen(6);
  auto xs = steps(3, 2, 4, gen);
  reset(M.m);
  std::vector<Tensor> together;
  for (const Tensor& x : xs) together.push_back(M.m(x));
  for (std::size_t b = 0; b < 4; ++b) {
    reset(M.m);
    for (std::size_t i = 0; i < xs.size(); ++i) {
      Tensor alone = M.m(slice(xs[i], 1, b, b + 1));
      CHECK(alone.item() == doctest::Approx(together[i].at({0, b})).epsilon(1e-14));
    }
  }
}

TEST_CASE("workflow: truncated BPTT built in — windows of k1 steps, gradients cut every k2") {
  Generator gen(7);
  auto xs = steps(12, 2, 1, gen), ys = steps(12, 1, 1, gen);
  auto run = [&](std::size_t k1, std::size_t k2) {
    Model M;
    reset(M.m);
    SGD opt(M.m.parameters(), {.lr = 0.1});
    const double mean = train_truncated(M.m, opt, xs.size(), [&](std::size_t t) { return mse_loss(M.m(xs[t]), ys[t]); },
                                        {.k1 = k1, .k2 = k2});
    return std::pair{mean, M.m.parameters()[1].to_vector()};  // weight_hh
  };
  // TBPTT(4, 4) by hand: three windows, each from the carried state, an SGD step after each.
  Model H;
  std::vector<double> expected;
  {
    Tensor h = Tensor::zeros({5, 1}, float64);
    SGD opt(H.m.parameters(), {.lr = 0.1});
    for (std::size_t w = 0; w < 3; ++w) {
      opt.zero_grad();
      Tensor l = Tensor::scalar(0.0, float64);
      for (std::size_t t = 4 * w; t < 4 * w + 4; ++t) {
        auto [y, h2] = H.step(xs[t], h);
        h = h2;
        l = l + mse_loss(y, ys[t]);
      }
      h = h.detach();  // the next window starts from this value (backward will free the original)
      l.backward();
      opt.step();
    }
    expected = H.m.parameters()[1].to_vector();
  }
  const auto [mean44, w44] = run(4, 4);
  for (std::size_t k = 0; k < w44.size(); ++k) CHECK(w44[k] == doctest::Approx(expected[k]).epsilon(1e-12));
  CHECK(std::isfinite(mean44));
  // A shorter gradient horizon changes the update; a longer window (one update) changes it too.
  CHECK(run(4, 2).second != w44);
  CHECK(run(12, 12).second != w44);
}

TEST_CASE("workflow: TBPTT(k1, k2) with k2 > k1 — each window's losses reach k2 steps back") {
  Generator gen(8);
  const std::size_t n = 11;  // k1 = 3: windows 0-2, 3-5, 6-8 and a short 9-10
  auto xs = steps(n, 2, 1, gen), ys = steps(n, 1, 1, gen);
  auto run = [&](std::size_t k1, std::size_t k2) {
    Model M;
    reset(M.m);
    SGD opt(M.m.parameters(), {.lr = 0.1});
    std::vector<std::size_t> calls;
    const double mean = train_truncated(M.m, opt, n, [&](std::size_t t) {
      calls.push_back(t);
      return mse_loss(M.m(xs[t]), ys[t]);
    }, {.k1 = k1, .k2 = k2});
    return std::tuple{mean, M.m.parameters()[1].to_vector(), calls};
  };
  // Williams & Peng's BPTT(k2; k1) by explicit cell steps: the state before each step is the one of
  // the first pass through it; every k1 steps, the k1 losses are backpropagated from the state k2
  // steps back, run again with the current weights; then an SGD step.
  auto by_hand = [&](std::size_t k1, std::size_t k2) {
    Model H;
    SGD opt(H.m.parameters(), {.lr = 0.1});
    std::vector<Tensor> before(n + 1);  // before[t]: the state before step t
    before[0] = Tensor::zeros({5, 1}, float64);
    double total = 0;
    for (std::size_t start = 0; start < n; start += k1) {
      const std::size_t end = std::min(start + k1, n), from = end > k2 ? end - k2 : 0;
      opt.zero_grad();
      Tensor h = before[from], l = Tensor::scalar(0.0, float64);
      for (std::size_t t = from; t < end; ++t) {
        if (t >= start) before[t] = h.detach();
        auto [y, h2] = H.step(xs[t], h);
        h = h2;
        if (t >= start) {
          l = l + mse_loss(y, ys[t]);
          total += mse_loss(y, ys[t]).item();
        }
      }
      before[end] = h.detach();
      l.backward();
      opt.step();
    }
    return std::pair{total / n, H.m.parameters()[1].to_vector()};
  };
  for (auto [k1, k2] : {std::pair{3, 5}, std::pair{2, 4}, std::pair{3, 11}}) {
    CAPTURE(k1);
    CAPTURE(k2);
    const auto [mean, w, calls] = run(k1, k2);
    const auto [expected_mean, expected_w] = by_hand(k1, k2);
    REQUIRE(w.size() == expected_w.size());
    for (std::size_t k = 0; k < w.size(); ++k) CHECK(w[k] == doctest::Approx(expected_w[k]).epsilon(1e-12));
    CHECK(mean == doctest::Approx(expected_mean).epsilon(1e-12));
    CHECK(std::get<1>(run(k1, k1)) != w);  // the longer horizon changes the updates
    // The steps re-run: window [start, end) calls step_loss from max(0, end − k2) up.
    std::vector<std::size_t> expected_calls;
    for (std::size_t start = 0; start < n; start += k1) {
      const std::size_t end = std::min<std::size_t>(start + k1, n);
      for (std::size_t t = end > std::size_t(k2) ? end - k2 : 0; t < end; ++t) expected_calls.push_back(t);
    }
    CHECK(calls == expected_calls);
  }
}
