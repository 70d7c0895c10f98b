// examples/common/timeseries.hpp — Géron's sine-wave forecasting task (Hands-On ML, ch. 15), shared
// by examples/forecast.cpp and examples/custom_cell.cpp: the data, its split, Keras' initializers for
// the built-in cells, and one training routine (Adam on MSE, shuffled mini-batches, validation MSE).
//
// The data is the notebook's, bit for bit. Géron writes
//
//     np.random.seed(42)
//     def generate_time_series(batch_size, n_steps):
//         freq1, freq2, offsets1, offsets2 = np.random.rand(4, batch_size, 1)
//         time = np.linspace(0, 1, n_steps)
//         series = 0.5 * np.sin((time - offsets1) * (freq1 * 10 + 10))   #   wave 1
//         series += 0.2 * np.sin((time - offsets2) * (freq2 * 20 + 20))  # + wave 2
//         series += 0.1 * (np.random.rand(batch_size, n_steps) - 0.5)    # + noise
//         return series[..., np.newaxis].astype(np.float32)
//     series = generate_time_series(10000, n_steps + 1)                   # n_steps = 50
//
// and rwd::Generator(42) is NumPy's legacy RandomState(42) (same MT19937 seeding, uniform() is
// rand()), so the same draws in the same order (C order: the 4 × batch_size draws of the first rand,
// then batch_size × n_steps of noise), the same double arithmetic and the final float32 rounding give
// the same 510,000 float32 values. The split is the notebook's: series 0–6999 train, 7000–8999
// validation, 9000–9999 test; the first 50 steps are the input, step 51 the target.
//
// Layout: a batch of series is a (time, 1, batch) sequence — each step a (features = 1, batch) slice —
// and the targets a (1, batch) matrix.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <iomanip>
#include <iostream>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include <rewind.hpp>

#include "example.hpp"

namespace ex {

/// Géron's generate_time_series: `batch_size` series of `n_steps` values, row-major (series b, step t
/// at [b·n_steps + t]), drawn from `gen` exactly as NumPy draws them from its global RandomState.
inline std::vector<float> generate_time_series(std::size_t batch_size, std::size_t n_steps, rwd::Generator& gen) {
  std::vector<double> r(4 * batch_size);  // np.random.rand(4, batch_size, 1), unpacked along axis 0
  for (double& v : r) v = gen.uniform();
  const double* freq1 = r.data();
  const double* freq2 = freq1 + batch_size;
  const double* offsets1 = freq2 + batch_size;
  const double* offsets2 = offsets1 + batch_size;
  // np.linspace(0, 1, n): step = 1/(n − 1), t_i = i·step, and the last point set to exactly 1.
  std::vector<double> time(n_steps);
  const double step = n_steps > 1 ? 1.0 / static_cast<double>(n_steps - 1) : 0.0;
  for (std::size_t i = 0; i < n_steps; ++i) time[i] = static_cast<double>(i) * step;
  if (n_steps > 1) time.back() = 1.0;

  std::vector<double> series(batch_size * n_steps);
  for (std::size_t b = 0; b < batch_size; ++b)
    for (std::size_t t = 0; t < n_steps; ++t) {
      double s = 0.5 * std::sin((time[t] - offsets1[b]) * (freq1[b] * 10 + 10));
      s += 0.2 * std::sin((time[t] - offsets2[b]) * (freq2[b] * 20 + 20));
      series[b * n_steps + t] = s;
    }
  for (double& s : series) s += 0.1 * (gen.uniform() - 0.5);  // np.random.rand(batch_size, n_steps), C order
  return std::vector<float>(series.begin(), series.end());    // .astype(np.float32)
}

/// One part of the split: n series of `steps` inputs each, and their next values.
struct Split {
  std::size_t n = 0, steps = 0;
  std::vector<float> x;  // n × steps, row-major
  std::vector<float> y;  // n

  /// Series `idx` as a (steps, 1, idx.size()) sequence and their targets as (1, idx.size()).
  std::pair<rwd::Tensor, rwd::Tensor> batch(const std::vector<std::size_t>& idx) const {
    const std::size_t B = idx.size();
    std::vector<float> xs(steps * B), ys(B);
    for (std::size_t j = 0; j < B; ++j) {
      for (std::size_t t = 0; t < steps; ++t) xs[t * B + j] = x[idx[j] * steps + t];
      ys[j] = y[idx[j]];
    }
    return {rwd::Tensor::from_vector(xs, {steps, 1, B}), rwd::Tensor::from_vector(ys, {1, B})};
  }
  /// Every series, in order.
  std::pair<rwd::Tensor, rwd::Tensor> all() const {
    std::vector<std::size_t> idx(n);
    std::iota(idx.begin(), idx.end(), std::size_t{0});
    return batch(idx);
  }
};

/// The notebook's data: 10,000 series of 50 + 1 steps from seed 42, split 7000 / 2000 / 1000.
struct ForecastData {
  static constexpr std::size_t n_steps = 50;
  std::vector<float> series;  // 10000 × 51
  Split train, valid, test;

  ForecastData() {
    rwd::Generator numpy_global(42);  // np.random.seed(42)
    series = generate_time_series(10000, n_steps + 1, numpy_global);
    train = part(0, 7000);
    valid = part(7000, 9000);
    test = part(9000, 10000);
  }

 private:
  Split part(std::size_t from, std::size_t to) const {
    Split s{.n = to - from, .steps = n_steps, .x = {}, .y = {}};
    for (std::size_t b = from; b < to; ++b) {
      const float* row = series.data() + b * (n_steps + 1);
      s.x.insert(s.x.end(), row, row + n_steps);  // series[:, :n_steps]
      s.y.push_back(row[n_steps]);                // series[:, -1]
    }
    return s;
  }
};

/// Mean squared error in double of float32 predictions against targets.
inline double mse(const std::vector<double>& pred, const std::vector<float>& target) {
  double s = 0;
  for (std::size_t i = 0; i < target.size(); ++i) s += (pred[i] - target[i]) * (pred[i] - target[i]);
  return s / static_cast<double>(target.size());
}

/// A model's predictions of the next value for every series of `split` (no tape: grad mode off; eval mode).
inline std::vector<double> predict(rwd::Module& model, const Split& split) {
  rwd::NoGradGuard no_grad;
  // In evaluation mode (dropout off), then back to the mode the model was in.
  struct EvalMode {
    rwd::Module& m;
    bool was = m.training();
    ~EvalMode() { m.train(was); }
  } mode{model};
  model.eval();
  return model(split.all().first).to_vector();
}

/// Re-initializes the cells of a Recurrent as Keras does (SimpleRNN, LSTM, GRU): input weights
/// Glorot-uniform, recurrent weights orthogonal, biases zero — and an LSTM's forget-gate bias 1
/// (unit_forget_bias). rewind's own default is PyTorch's U(±1/√hidden) for everything.
/// Keras keeps one bias per gate (GRU: two, reset_after); rewind keeps PyTorch's pair b_ih + b_hh,
/// which computes the same function — only their sum matters, so zeroing both is Keras' zero bias.
inline void keras_init(rwd::Recurrent& layer, rwd::Generator& gen) {
  using namespace rwd;
  for (std::size_t l = 0; l < layer.num_layers(); ++l) {
    Cell& c = layer.cell(l);
    auto reinit = [&](Tensor& w_ih, Tensor& w_hh, Tensor& b_ih, Tensor& b_hh) {
      w_ih.assign(init::glorot_uniform(w_ih.shape(), gen, w_ih.dtype()));
      w_hh.assign(init::orthogonal(w_hh.shape(), gen, w_hh.dtype()));
      b_ih.fill(0);
      b_hh.fill(0);
    };
    if (auto* rnn = dynamic_cast<RNNCell*>(&c)) {
      reinit(rnn->weight_ih, rnn->weight_hh, rnn->bias_ih, rnn->bias_hh);
    } else if (auto* gru = dynamic_cast<GRUCell*>(&c)) {
      reinit(gru->weight_ih, gru->weight_hh, gru->bias_ih, gru->bias_hh);
    } else if (auto* lstm = dynamic_cast<LSTMCell*>(&c)) {
      reinit(lstm->weight_ih, lstm->weight_hh, lstm->bias_ih, lstm->bias_hh);
      const std::size_t H = lstm->output_size();  // gates i, f, g, o: the forget gate is rows H … 2H−1
      std::vector<double> b(4 * H, 0.0);
      std::fill(b.begin() + static_cast<std::ptrdiff_t>(H), b.begin() + static_cast<std::ptrdiff_t>(2 * H), 1.0);
      lstm->bias_ih.assign(Tensor::from_vector(b, {4 * H}, lstm->bias_ih.dtype()));
    }
  }
}

/// How one model is trained (Keras' fit defaults: batch 32, shuffled every epoch).
struct TrainSpec {
  double lr = 1e-3;
  std::size_t epochs = 20;
  std::size_t batch = 32;
  std::size_t max_batches = 0;  // > 0: only this many batches per epoch (--quick)
};

/// A trained model's record.
struct Trained {
  std::string name;
  rwd::History history;
  double val_mse = 0;
  double seconds = 0;
  std::size_t parameters = 0;
  std::vector<double> val_pred;  // the prediction for every validation series
};

/// Trains `model` (a (50, 1, B) sequence → (1, B) prediction) with Adam on the MSE — Keras' Adam:
/// ε = 1e-7 — over shuffled mini-batches (the last one smaller: 7000 = 218·32 + 24), printing a
/// progress line per epoch, validating on the whole validation set after each epoch; writes the
/// history to <out>/history_<name>.csv.
inline Trained train_forecaster(const std::string& name, rwd::Module& model, const ForecastData& data, const TrainSpec& spec,
                                rwd::Generator& gen, const Args& args) {
  using namespace rwd;
  const Split& tr = data.train;
  std::size_t n_batches = (tr.n + spec.batch - 1) / spec.batch;
  if (spec.max_batches) n_batches = std::min(n_batches, spec.max_batches);
  std::vector<std::size_t> order(tr.n);
  std::iota(order.begin(), order.end(), std::size_t{0});

  std::cout << "\n== " << name << ": " << model.repr() << "  (" << model.num_parameters() << " parameters, Adam lr "
            << spec.lr << ", " << spec.epochs << " epochs × " << n_batches << " batches of " << spec.batch << ")\n";
  Adam opt(model.parameters(), {.lr = spec.lr, .eps = 1e-7});
  const auto start = std::chrono::steady_clock::now();
  History h = fit(
      opt, n_batches,
      [&](std::size_t, std::size_t b) {
        if (b == 0)  // a new epoch: reshuffle (Fisher–Yates from the seeded generator)
          for (std::size_t i = tr.n - 1; i > 0; --i) std::swap(order[i], order[gen.integer(i + 1)]);
        const std::size_t lo = b * spec.batch, hi = std::min(lo + spec.batch, tr.n);
        auto [x, y] = tr.batch(std::vector<std::size_t>(order.begin() + static_cast<std::ptrdiff_t>(lo),
                                                        order.begin() + static_cast<std::ptrdiff_t>(hi)));
        return mse_loss(model(x), y);
      },
      {.epochs = spec.epochs,
       .validate = [&] { return mse(predict(model, data.valid), data.valid.y); },
       .out = &std::cout});
  Trained t{.name = name, .history = h, .val_mse = 0, .seconds = seconds_since(start),
            .parameters = model.num_parameters(), .val_pred = predict(model, data.valid)};
  t.val_mse = mse(t.val_pred, data.valid.y);
  h.write_csv(args.path("history_" + name + ".csv"));
  return t;
}

/// gnuplot's default colours without its pale yellow (5), by index.
inline std::string colour(std::size_t i) {
  static const int lc[] = {1, 2, 3, 4, 6, 7, 8};
  return std::to_string(lc[i % 7]);
}

/// Every model's training (dashed) and validation (solid) MSE per epoch, one colour per model, on a
/// log scale; `flat` adds constant lines (a baseline such as the naive forecast).
inline bool plot_learning_curves(const std::string& png, const std::string& title, const std::vector<Trained>& runs,
                                 const std::vector<std::pair<std::string, double>>& flat = {}) {
  std::vector<Series> s;
  std::size_t c = 0;
  for (const auto& [label, value] : flat) {
    const std::size_t n = runs.empty() ? 1 : runs.front().history.epochs.size();
    s.push_back({label, {value, value}, {1.0, static_cast<double>(std::max<std::size_t>(n, 2))},
                 "lines lc " + colour(c++) + " dt 3 lw 2"});
  }
  for (const Trained& r : runs) {
    Series train{r.name + " train", {}, {}, "lines lc " + colour(c) + " dt 2"};
    Series val{r.name + " val", {}, {}, "linespoints lc " + colour(c) + " pt 7 ps 0.6 lw 2"};
    for (const auto& e : r.history.epochs) {
      train.x.push_back(static_cast<double>(e.epoch));
      train.y.push_back(e.loss);
      val.x.push_back(static_cast<double>(e.epoch));
      val.y.push_back(e.val_loss);
    }
    s.push_back(train);
    s.push_back(val);
    ++c;
  }
  return plot(png, title, "epoch", "MSE (log scale)", s, true);
}

/// One validation series (its 50 inputs), the true next value, and each model's prediction of it.
inline bool plot_forecast(const std::string& png, const ForecastData& data, std::size_t series,
                          const std::vector<std::pair<std::string, double>>& predictions) {
  const Split& v = data.valid;
  Series input{"input x(t)", {}, {}, "linespoints lc rgb 'gray30' pt 7 ps 0.5"};
  for (std::size_t t = 0; t < v.steps; ++t) {
    input.x.push_back(static_cast<double>(t));
    input.y.push_back(v.x[series * v.steps + t]);
  }
  std::vector<Series> s{input, {"true next value", {v.y[series]}, {static_cast<double>(v.steps)}, "points pt 2 ps 3 lw 3 lc rgb 'blue'"}};
  int pt = 4;
  for (std::size_t i = 0; i < predictions.size(); ++i)
    s.push_back({predictions[i].first, {predictions[i].second}, {static_cast<double>(v.steps) + 0.25 * static_cast<double>(i + 1)},
                 "points pt " + std::to_string(pt++) + " ps 2 lw 2 lc " + colour(i)});
  return plot(png, "validation series " + std::to_string(series) + ": x(50) and its forecasts (drawn side by side)", "t",
              "x(t)", s);
}

}  // namespace ex
