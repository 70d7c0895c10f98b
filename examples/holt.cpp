// examples/holt.cpp — double exponential smoothing is an RNN (the seeds' RNN(1, 2, 1)).
//
// Holt's linear method keeps a level s and a slope b of a series y and forecasts one step ahead:
//
//   s_t = α y_t + (1 − α)(s_{t−1} + b_{t−1})        ŷ_{t+1} = s_t + b_t
//   b_t = β (s_t − s_{t−1}) + (1 − β) b_{t−1}
//
// With h = (s, b) that is a linear recurrent cell with no bias and no activation:
//
//   h_t = W_hx y_t + W_hh h_{t−1},   W_hx = [α; αβ],   W_hh = [[1−α, 1−α], [−αβ, 1−αβ]],   ŷ_{t+1} = [1 1] h_t
//
// Part 1 gives the cell the seeds' fixed α = 0.7, β = 0.8 and checks it against Holt's method computed
// directly on a noisy line. Part 2 generates series from the model Holt's method is optimal for,
// ETS(A,A,N), with known α and β, then forgets them: α and β become parameters, and gradient descent
// through the unrolled recurrence (the tape, swept backward — BPTT with two weights) finds them again.
//
//   bash scripts/example.sh holt            # the full run
//   bash scripts/example.sh holt --quick    # a few iterations
#include "common/example.hpp"

#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <vector>

using namespace rwd;

namespace {

/// Holt's method written out, one series: the level, the slope and the forecast of the next value
/// after each observation, from the starting level s and slope b.
struct HoltRun {
  std::vector<double> level, slope, forecast;  // forecast[t] = level[t] + slope[t], the forecast of y[t+1]
};
HoltRun holt(const std::vector<double>& y, double alpha, double beta, double s, double b) {
  HoltRun r;
  for (double yt : y) {
    const double s_next = alpha * yt + (1 - alpha) * (s + b);
    b = beta * (s_next - s) + (1 - beta) * b;
    s = s_next;
    r.level.push_back(s);
    r.slope.push_back(b);
    r.forecast.push_back(s + b);
  }
  return r;
}

/// The same method as a recurrent cell, rwd::Cell's way: step(y_t, {h_{t−1}}) -> (ŷ_{t+1}, {h_t}).
/// α and β are its two parameters (0-d float64); the weight matrices are built from them at every
/// step, so the gradient reaches α and β through every entry of W_hx and W_hh.
class HoltCell : public Cell {
 public:
  HoltCell(double alpha0, double beta0) {
    alpha = register_parameter("alpha", Tensor::scalar(alpha0, float64));
    beta = register_parameter("beta", Tensor::scalar(beta0, float64));
  }

  std::pair<Tensor, State> step(const Tensor& y, const State& state) override {
    check_step(y, state, 1);
    const Tensor ab = alpha * beta;
    const Tensor W_hx = reshape(stack({alpha, ab}), {2, 1});
    const Tensor W_hh = reshape(stack({1.0 - alpha, 1.0 - alpha, -ab, 1.0 - ab}), {2, 2});
    const Tensor W_yh = Tensor::ones({1, 2}, float64);
    const Tensor h = matmul(W_hx, y) + matmul(W_hh, state[0]);
    return {matmul(W_yh, h), {h}};
  }
  State initial_state(std::size_t batch) const override { return {Tensor::zeros({2, batch}, float64)}; }
  std::size_t input_size() const override { return 1; }
  std::size_t output_size() const override { return 1; }
  std::string repr() const override { return "HoltCell(1 => 2 => 1)"; }

  Tensor alpha, beta;
};

/// A series from ETS(A,A,N), the model for which Holt's method is the optimal forecaster:
///   y_t = s + b + ε_t,   s ← s + b + α ε_t,   b ← b + αβ ε_t,   ε_t ~ N(0, σ²)
/// With the true α and β, Holt's one-step forecast errors are exactly the ε_t.
std::vector<double> ets_series(std::size_t n, double alpha, double beta, double s, double b, double sigma,
                               Generator& gen) {
  std::vector<double> y;
  for (std::size_t t = 0; t < n; ++t) {
    const double e = sigma * gen.normal();
    y.push_back(s + b + e);
    s = s + b + alpha * e;
    b = b + alpha * beta * e;
  }
  return y;
}

/// Columns of series as one (time, 1, batch) sequence, and the (2, batch) state h = (level, slope).
Tensor as_sequence(const std::vector<std::vector<double>>& series, std::size_t from) {
  const std::size_t T = series[0].size() - from, B = series.size();
  std::vector<double> flat(T * B);
  for (std::size_t j = 0; j < B; ++j)
    for (std::size_t t = 0; t < T; ++t) flat[t * B + j] = series[j][from + t];
  return Tensor::from_vector(flat, {T, 1, B}, float64);
}
Tensor as_state(const std::vector<double>& level, const std::vector<double>& slope) {
  std::vector<double> v = level;
  v.insert(v.end(), slope.begin(), slope.end());
  return Tensor::from_vector(v, {2, level.size()}, float64);
}

}  // namespace

int run(int argc, char** argv) {
  ex::Args args(argc, argv, "holt");
  const auto start = std::chrono::steady_clock::now();
  Generator gen(args.seed);
  bool ok = true;

  // ---- Part 1: the fixed-weight RNN(1, 2, 1) is Holt's method -----------------------------------
  std::cout << "== Part 1: RNN(1, 2, 1) with W_hx = [α; αβ], W_hh = [[1−α, 1−α], [−αβ, 1−αβ]], W_yh = [1 1] ==\n";
  // The seeds' noisy line: y = 0.8·N(0, 1) + 2t + 1, t = 0 … 9, smoothed with α = 0.7, β = 0.8.
  std::vector<double> line;
  for (int t = 0; t < 10; ++t) line.push_back(0.8 * gen.normal() + 2 * t + 1);
  const double a_fixed = 0.7, b_fixed = 0.8;
  // Holt's start: s = y₀, b = y₁ − y₀; then y₁, y₂, … are smoothed one at a time.
  const std::vector<double> rest(line.begin() + 1, line.end());
  const HoltRun direct = holt(rest, a_fixed, b_fixed, line[0], line[1] - line[0]);

  HoltCell fixed(a_fixed, b_fixed);
  const SequenceRun run =
      run_sequence(fixed, as_sequence({line}, 1), {as_state({line[0]}, {line[1] - line[0]})});
  std::printf("  t       y_t       s_t       b_t   Holt ŷ_{t+1}  RNN ŷ_{t+1}   |diff|\n");
  double max_diff = 0;
  for (std::size_t k = 0; k < rest.size(); ++k) {
    const double rnn = run.outputs[k].item(), diff = std::abs(rnn - direct.forecast[k]);
    max_diff = std::max(max_diff, diff);
    std::printf("%3zu %9.4f %9.4f %9.4f   %-12.6f %-12.6f %.2g\n", k + 1, rest[k], direct.level[k], direct.slope[k],
                direct.forecast[k], rnn, diff);
  }
  std::printf("max |Holt − RNN| = %.3g\n", max_diff);
  if (max_diff > 1e-12) {
    std::cout << "FAIL: the RNN does not reproduce Holt's method\n";
    ok = false;
  }
  {
    ex::Series data{"data", line, {}, "points"}, pred{"RNN forecast", {}, {}, "points"};
    for (std::size_t k = 0; k < rest.size(); ++k) {
      pred.x.push_back(static_cast<double>(k + 2));  // made after y_{k+1}, for y_{k+2}
      pred.y.push_back(run.outputs[k].item());
    }
    ex::plot(args.path("line.png"), "holt: the fixed RNN(1,2,1), alpha = 0.7, beta = 0.8, one step ahead", "t", "y", {data, pred});
  }

  // ---- Part 2: learning α and β by gradient descent through the recurrence ----------------------
  const double true_alpha = 0.6, true_beta = 0.3;
  const std::size_t T = 150, B = 8;
  std::cout << "\n== Part 2: " << B << " series of " << T << " steps from ETS(A,A,N) with α = " << true_alpha
            << ", β = " << true_beta << "; learn α, β back ==\n";
  std::vector<std::vector<double>> series;
  std::vector<double> s0, b0;
  for (std::size_t j = 0; j < B; ++j) {
    s0.push_back(10 * gen.uniform());
    b0.push_back(gen.uniform(-1, 1));
    series.push_back(ets_series(T, true_alpha, true_beta, s0[j], b0[j], 0.5, gen));
  }
  // The cell starts from the series' known initial state (s, b) before y₀ and forecasts y₁ … y_{T−1}
  // from y₀ … y_{T−2}. (The forecast of y₀ is s + b whatever α and β are, so it is left out.)
  const Tensor Y = as_sequence(series, 0), h0 = as_state(s0, b0);
  const std::vector<Tensor> inputs = split_steps(slice(Y, 0, 0, T - 1));
  const Tensor targets = slice(Y, 0, 1, T);

  HoltCell des(0.3, 0.1);  // a poor start: smooths too much and barely follows the slope
  auto loss_fn = [&] { return mse_loss(stack_steps(run_sequence(des, inputs, {h0}).outputs), targets); };

  // The least-squares (α, β) of these series, found without any gradient: a grid over Holt's method
  // computed directly. Gradient descent should land on it (and it is near, not at, the true values:
  // 8 × 150 noisy points only pin them down so far).
  auto direct_loss = [&](double a, double b) {
    double total = 0;
    for (std::size_t j = 0; j < B; ++j) {
      const HoltRun r = holt(series[j], a, b, s0[j], b0[j]);
      for (std::size_t t = 0; t + 1 < T; ++t) total += std::pow(series[j][t + 1] - r.forecast[t], 2);
    }
    return total / static_cast<double>((T - 1) * B);
  };
  double grid_a = 0, grid_b = 0, grid_loss = 1e300;
  for (int i = 0; i <= 160; ++i)
    for (int k = 0; k <= 160; ++k)
      if (const double l = direct_loss(0.1 + 0.005 * i, 0.005 * k); l < grid_loss)
        grid_loss = l, grid_a = 0.1 + 0.005 * i, grid_b = 0.005 * k;
  std::printf("grid minimum (no gradients): α = %.3f, β = %.3f, loss %.5f; at the true values: loss %.5f\n", grid_a,
              grid_b, grid_loss, direct_loss(true_alpha, true_beta));

  const std::size_t iterations = args.quick ? 20 : 300, print_every = args.quick ? 5 : 25;
  Adam opt(des.parameters(), {.lr = 0.01});
  std::cout << des.repr() << " from α = 0.3, β = 0.1; " << opt.str() << ", " << iterations << " iterations\n";
  History history;
  std::vector<double> path_a{des.alpha.item()}, path_b{des.beta.item()};
  Progress progress(&std::cout, iterations, 1);
  for (std::size_t it = 0; it < iterations; ++it) {
    const auto t0 = std::chrono::steady_clock::now();
    opt.zero_grad();
    Tensor loss = loss_fn();
    const double value = loss.item();
    loss.backward();  // through all T − 1 steps of all B series
    opt.step();
    path_a.push_back(des.alpha.item());
    path_b.push_back(des.beta.item());
    history.epochs.push_back({.epoch = it + 1, .loss = value, .val_loss = NAN, .grad_norm = NAN, .lr = opt.lr(),
                              .seconds = ex::seconds_since(t0), .batches = 1});
    if ((it + 1) % print_every == 0 || it == 0) {
      progress.epoch_done(history.epochs.back());
      std::printf("    α = %.4f  β = %.4f\n", path_a.back(), path_b.back());
    }
  }
  history.write_csv(args.path("history.csv"));
  {
    std::string csv = "iteration,alpha,beta\n";
    for (std::size_t i = 0; i < path_a.size(); ++i)
      csv += std::to_string(i) + "," + ex::num(path_a[i], "%.6f") + "," + ex::num(path_b[i], "%.6f") + "\n";
    write_file_atomic(args.path("path.csv"), csv);
  }
  const double alpha = des.alpha.item(), beta = des.beta.item();
  std::printf("recovered α = %.4f, β = %.4f   (true %.2f, %.2f; grid minimum %.3f, %.3f)\n", alpha, beta, true_alpha,
              true_beta, grid_a, grid_b);

  // Plots: the loss, the path of (α, β), and one series with its one-step forecasts.
  ex::plot_history(args.path("loss.png"), "holt: one-step forecast MSE while learning α, β", history);
  // The path over contours of the loss: along rays from the grid minimum, where the loss (computed
  // directly) crosses each level — bisection, since the loss rises away from the minimum.
  std::vector<ex::Series> path_plot{{"path of (α, β)", path_b, path_a, "linespoints"},
                                    {"true (α, β)", {true_beta}, {true_alpha}, "points"},
                                    {"grid minimum", {grid_b}, {grid_a}, "points"}};
  for (double level : {0.24, 0.26, 0.3, 0.4}) {
    ex::Series c{"loss " + ex::num(level), {}, {}, "lines"};
    for (int k = 0; k <= 120; ++k) {
      const double th = 2 * M_PI * k / 120, da = std::cos(th), db = std::sin(th);
      double lo = 0, hi = 0.6;
      if (direct_loss(grid_a + hi * da, grid_b + hi * db) < level) {  // not crossed within reach: a gap
        c.x.push_back(NAN);
        c.y.push_back(NAN);
        continue;
      }
      for (int i = 0; i < 40; ++i) {
        const double mid = (lo + hi) / 2;
        (direct_loss(grid_a + mid * da, grid_b + mid * db) < level ? lo : hi) = mid;
      }
      c.x.push_back(grid_a + lo * da);
      c.y.push_back(grid_b + lo * db);
    }
    path_plot.push_back(c);
  }
  ex::plot(args.path("path.png"), "holt: (alpha, beta) over gradient descent, on contours of the loss", "alpha", "beta",
           path_plot);
  {
    NoGradGuard no_grad;
    const std::vector<Tensor> learned = run_sequence(des, inputs, {h0}).outputs;
    HoltCell poor(0.3, 0.1);
    const std::vector<Tensor> before = run_sequence(poor, inputs, {h0}).outputs;
    ex::Series data{"series 0", series[0], {}, "points"};
    ex::Series fc{"learned α = " + ex::num(alpha, "%.3f") + ", β = " + ex::num(beta, "%.3f"), {}, {}, "lines"};
    ex::Series fc0{"α = 0.3, β = 0.1", {}, {}, "lines"};
    for (std::size_t t = 0; t + 1 < T; ++t) {
      fc.x.push_back(static_cast<double>(t + 1));
      fc.y.push_back(learned[t].to_vector()[0]);
      fc0.x.push_back(static_cast<double>(t + 1));
      fc0.y.push_back(before[t].to_vector()[0]);
    }
    ex::plot(args.path("forecast.png"), "holt: one-step forecasts of series 0, before and after learning", "t", "y", {data, fc0, fc});
  }

  if (!args.quick && (std::abs(alpha - grid_a) > 0.01 || std::abs(beta - grid_b) > 0.01)) {
    std::cout << "FAIL: gradient descent did not reach the grid minimum\n";
    ok = false;
  }
  std::cout << "wall time " << ex::num(ex::seconds_since(start), "%.2f") << " s\n";
  ex::result({{"example", "holt"},
              {"true_alpha", ex::num(true_alpha)},
              {"true_beta", ex::num(true_beta)},
              {"alpha", ex::num(alpha, "%.3f")},
              {"beta", ex::num(beta, "%.3f")},
              {"grid_alpha", ex::num(grid_a, "%.3f")},
              {"grid_beta", ex::num(grid_b, "%.3f")},
              {"holt_vs_rnn_max_diff", ex::num(max_diff, "%.2g")}});
  return ok ? 0 : 1;
}

int main(int argc, char** argv) { return ex::guard("holt", [&] { return run(argc, argv); }); }
