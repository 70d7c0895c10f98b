// examples/forecast.cpp — Géron's time-series forecasting task (Hands-On Machine Learning, ch. 15):
// predict the next value of a noisy sum of two sine waves from its 50 previous values.
//
//   bash scripts/example.sh forecast            # the full run: 20 epochs of every model
//   bash scripts/example.sh forecast --quick    # a few batches of each model (what CI runs)
//   ./build/examples/forecast [--quick] [--out DIR] [--seed N] [MODEL ...]   (e.g. `lstm gru`: only those)
//
// The data is the notebook's exactly (examples/common/timeseries.hpp: NumPy's RandomState(42)
// reproduced, 10,000 series of 50 + 1 steps, split 7000 / 2000 / 1000), so the naive forecast's
// validation MSE — a pure function of the data — is checked here to every digit Géron's notebook
// prints (0.020211367), and the program fails if it differs. --seed changes only the initial weights and the
// shuffling, never the data.
//
// The models, each trained as in the notebook with Adam on the MSE, 20 epochs of batches of 32:
//
//   naive       ŷ = x₅₀, no parameters
//   linear      Flatten → Dense(50 => 1)                                           Adam lr 1e-3 (Géron)
//   simple_rnn  SimpleRNN(1): h_t = tanh(w_x x_t + w_h h_{t−1} + b), ŷ = h₅₀       Adam lr 5e-3 (Géron, the seed)
//   deep_rnn    SimpleRNN(20) → SimpleRNN(20) → Dense(20 => 1) on the last step    Adam lr 1e-3 (Géron)
//   lstm        LSTM(20) → LSTM(20) → Dense(20 => 1) on the last step             Adam lr 5e-3 (the seed)
//   gru         GRU(20) → GRU(20) → Dense(20 => 1) on the last step               Adam lr 5e-3 (the seed)
//   ln_lstm     LayerNormLSTM(20) → LayerNormLSTM(20) → Dense(20 => 1)            Adam lr 5e-3 (as lstm)
//   lstm_vd     lstm with variational recurrent dropout 0.2 (one mask on h per sequence, Gal &
//               Ghahramani 2016; Keras' recurrent_dropout)                        Adam lr 5e-3 (as lstm)
//
// The last two regularise or normalise the lstm model (issue 16): the LayerNorm-LSTM of Ba et al.
// (nn/layer_norm_cells.hpp) and RecurrentOptions::recurrent_dropout. No input dropout: the first
// layer's input is a single feature, so a mask on it would blank whole series. Their weights are drawn
// from a generator of their own (seeded from --seed), so adding them changes none of the other models'
// figures; they are initialized like lstm (Keras' way; for the LN-LSTM its one bias takes the forget
// gate's 1, the LayerNorms start at gain 1 and bias 0).
//
// initialized as Keras does (input weights Glorot-uniform, recurrent weights orthogonal, biases zero,
// LSTM forget bias 1). Keras' SimpleRNN has one bias b; rewind's RNNCell has PyTorch's two, b_ih and
// b_hh, which enter only as their sum — the same function, one redundant parameter per unit (so
// SimpleRNN(1) has 4 parameters here, 3 in Keras).
//
// Géron's deep RNN ends in a third SimpleRNN(1) (0.0029); his variant ending in Dense(1), which is
// the one trained here, is the faster one he recommends. His LSTM and GRU forecast 10 steps at once,
// so there is no published one-step figure for them; examples/peers/forecast_torch.py trains the same
// six models in PyTorch with the same data, initialization and budget.
//
// Output (in --out, default out/forecast): history_<model>.csv per trained model,
// learning_curves.png, forecast.png, and a closing `RESULT <model>_val_mse=… …` line.
#include <rewind.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "common/example.hpp"
#include "common/timeseries.hpp"

using namespace rwd;

/// Keras' Flatten for a sequence: (time, features, batch) → (time·features, batch).
class Flatten : public Module {
 public:
  Tensor forward(const Tensor& x) override { return reshape(x, {x.dim(0) * x.dim(1), x.dim(2)}); }
  std::string repr() const override { return "Flatten()"; }
};

namespace {

// NumPy's own values (np.random.seed(42); series = generate_time_series(10000, 51), float32), printed
// with repr(): series[0, :5], series[7000, -3:] and series[9999, -1] — an independent reference.
struct Reference {
  std::size_t series, step;
  float value;
};
constexpr Reference numpy_values[] = {
    {0, 0, 0.4596948f},     {0, 1, 0.31486678f},    {0, 2, 0.124971226f}, {0, 3, -0.103913404f},
    {0, 4, -0.33817387f},   {7000, 48, 0.59239095f}, {7000, 49, 0.5643068f}, {7000, 50, 0.4000832f},
    {9999, 50, 0.050528232f},
};
// np.mean(np.square(y_valid - X_valid[:, -1])) in float32: Géron's notebook prints 0.020211367.
constexpr float geron_naive = 0.020211367f;

struct Model {
  std::string name;
  std::shared_ptr<Module> model;
  double lr;
  const char* geron;  // Géron's published validation MSE, or "-"
};

}  // namespace

int run(int argc, char** argv) {
  ex::Args args(argc, argv, "forecast", {.positional = "[MODEL ...]"});
  const auto start = std::chrono::steady_clock::now();

  // ---- the models ----
  Generator gen(args.seed);
  auto recurrent = [&](Recurrent r) {
    auto p = std::make_shared<Recurrent>(std::move(r));
    ex::keras_init(*p, gen);
    return p;
  };
  const RecurrentOptions last_of_2{.num_layers = 2, .return_sequences = false};
  std::vector<Model> models;
  models.push_back({"linear", std::make_shared<Chain>(Flatten(), Dense(50, 1, {}, true, float32, gen)), 1e-3, "0.0042"});
  models.push_back({"simple_rnn", recurrent(RNN(1, 1, "tanh", {}, {.return_sequences = false}, gen)), 5e-3, "0.0109"});
  models.push_back({"deep_rnn", std::make_shared<Chain>(recurrent(RNN(1, 20, "tanh", {}, last_of_2, gen)), Dense(20, 1, {}, true, float32, gen)),
                    1e-3, "0.0029"});
  models.push_back({"lstm", std::make_shared<Chain>(recurrent(LSTM(1, 20, {}, last_of_2, gen)), Dense(20, 1, {}, true, float32, gen)), 5e-3, "-"});
  models.push_back({"gru", std::make_shared<Chain>(recurrent(GRU(1, 20, {}, last_of_2, gen)), Dense(20, 1, {}, true, float32, gen)), 5e-3, "-"});
  // Issue 16's regularisation comparison, from a generator of their own (see the top).
  Generator extra_gen(args.seed ^ 0x16u);
  auto ln_lstm = std::make_shared<Recurrent>(LayerNormLSTM(1, 20, {}, last_of_2, extra_gen));
  for (std::size_t l = 0; l < ln_lstm->num_layers(); ++l) {
    auto& c = dynamic_cast<LayerNormLSTMCell&>(ln_lstm->cell(l));
    c.weight_ih.assign(init::glorot_uniform(c.weight_ih.shape(), extra_gen));
    c.weight_hh.assign(init::orthogonal(c.weight_hh.shape(), extra_gen));
    std::vector<double> b(c.bias.numel(), 0.0);
    std::fill(b.begin() + 20, b.begin() + 40, 1.0);  // gates i, f, g, o: the forget gate's rows
    c.bias.assign(Tensor::from_vector(b, c.bias.shape()));
  }
  models.push_back({"ln_lstm", std::make_shared<Chain>(ln_lstm, Dense(20, 1, {}, true, float32, extra_gen)), 5e-3, "-"});
  RecurrentOptions vd = last_of_2;
  vd.recurrent_dropout = 0.2;
  auto lstm_vd = std::make_shared<Recurrent>(LSTM(1, 20, {}, vd, extra_gen));
  ex::keras_init(*lstm_vd, extra_gen);
  models.push_back({"lstm_vd", std::make_shared<Chain>(lstm_vd, Dense(20, 1, {}, true, float32, extra_gen)), 5e-3, "-"});

  for (const std::string& name : args.rest)  // a misspelt name would otherwise train nothing, silently
    if (std::none_of(models.begin(), models.end(), [&](const Model& m) { return m.name == name; })) {
      std::string names;
      for (const Model& m : models) names += (names.empty() ? "" : ", ") + m.name;
      args.fail("no model '" + name + "' (" + names + ")");
    }
  if (!args.rest.empty())  // `forecast lstm gru`: only the models named
    std::erase_if(models, [&](const Model& m) { return std::find(args.rest.begin(), args.rest.end(), m.name) == args.rest.end(); });

  // ---- the data, checked against NumPy (once the command line has been checked: the models named) ----
  const ex::ForecastData data;
  bool data_ok = true;
  std::printf("data: 10000 series of 51 steps (NumPy RandomState(42)), split %zu / %zu / %zu\n", data.train.n,
              data.valid.n, data.test.n);
  for (const Reference& r : numpy_values) {
    const float mine = data.series[r.series * 51 + r.step];
    const bool same = mine == r.value;
    data_ok = data_ok && same;
    std::printf("  series[%zu, %zu] = %.9g   NumPy %.9g   %s\n", r.series, r.step, mine, r.value, same ? "equal" : "DIFFERENT");
  }

  // ---- the naive forecast: the last value ----
  std::vector<double> naive_pred(data.valid.n);
  for (std::size_t i = 0; i < data.valid.n; ++i) naive_pred[i] = data.valid.x[i * data.valid.steps + data.valid.steps - 1];
  const double naive = ex::mse(naive_pred, data.valid.y);
  const bool naive_ok = static_cast<float>(naive) == geron_naive;
  std::printf("naive forecast: validation MSE %.12f (as float32 %.9f; Géron's notebook: %.9f) %s\n", naive,
              static_cast<float>(naive), geron_naive, naive_ok ? "equal" : "DIFFERENT");

  std::vector<ex::Trained> runs;
  for (Model& m : models) {
    const ex::TrainSpec spec{.lr = m.lr, .epochs = args.quick ? 2u : 20u, .batch = 32, .max_batches = args.quick ? 4u : 0u};
    runs.push_back(ex::train_forecaster(m.name, *m.model, data, spec, gen, args));
  }

  // ---- the table ----
  std::printf("\nvalidation MSE (2000 series)%s\n", args.quick ? "  [--quick: a few batches only, not comparable]" : "");
  std::printf("  %-11s %7s %7s %12s %9s %10s\n", "model", "params", "lr", "val MSE", "Géron", "s/epoch");
  std::printf("  %-11s %7d %7s %12.6f %9s %10s\n", "naive", 0, "-", naive, "0.0202", "-");
  bool finite = true;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const ex::Trained& r = runs[i];
    finite = finite && std::isfinite(r.val_mse);
    std::printf("  %-11s %7zu %7.0e %12.6f %9s %10.2f\n", r.name.c_str(), r.parameters, models[i].lr, r.val_mse,
                models[i].geron, r.seconds / static_cast<double>(r.history.epochs.size()));
  }

  // ---- the plots ----
  ex::plot_learning_curves(args.path("learning_curves.png"), "forecasting the next value: MSE per epoch", runs,
                           {{"naive (val)", naive}});
  const std::size_t shown = 0;  // Géron plots X_valid[0]
  std::vector<std::pair<std::string, double>> preds{{"naive", naive_pred[shown]}};
  for (const ex::Trained& r : runs) preds.emplace_back(r.name, r.val_pred[shown]);
  ex::plot_forecast(args.path("forecast.png"), data, shown, preds);
  std::printf("\nwrote %s/{history_<model>.csv, learning_curves.png, forecast.png} in %.1f s\n", args.out.c_str(),
              ex::seconds_since(start));

  std::vector<std::pair<std::string, std::string>> fields{{"naive_val_mse", ex::num(naive, "%.9f")}};
  for (const ex::Trained& r : runs) fields.emplace_back(r.name + "_val_mse", ex::num(r.val_mse));
  ex::result(fields);
  if (!data_ok || !naive_ok) std::cout << "FAIL: the series differ from NumPy's\n";
  return data_ok && naive_ok && finite ? 0 : 1;
}

int main(int argc, char** argv) { return ex::guard("forecast", [&] { return run(argc, argv); }); }
