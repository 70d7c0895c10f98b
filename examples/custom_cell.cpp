// examples/custom_cell.cpp — a recurrent cell of your own: Géron's layer-normalized simple RNN cell
// (Hands-On Machine Learning, ch. 15, `LNSimpleRNNCell`), written here in user code, gradient
// checked, and trained on the forecasting task next to the built-in cells.
//
//   bash scripts/example.sh custom_cell            # the full run: 20 epochs of each model
//   bash scripts/example.sh custom_cell --quick    # a few batches of each (what CI runs)
//   ./build/examples/custom_cell [--quick] [--out DIR] [--seed N]
//
// Writing a cell takes a subclass of rwd::Cell with
//   - its parameters, registered in the constructor (register_parameter, register_module for a layer
//     it contains) — that is what makes them appear in parameters(), state_dict() and the optimizer;
//   - step(x, state) -> (y, state'): one time step, composed from the tape's primitives, so it needs
//     no backward of its own;
//   - initial_state(batch), input_size(), output_size(), repr().
// The time loop is not the cell's business: Recur (one step per call), run_sequence and Recurrent
// (whole sequences, stacked, bidirectional, masked) take any Cell, and backprop-through-time is the
// tape's reverse sweep over the unrolled steps.
//
// The comparison (the sizes of Géron's LN model; Adam lr 1e-3 as he compiles it, MSE, 20 epochs of
// batches of 32, data of examples/common/timeseries.hpp): two stacked layers of 20 units, then
// Dense(20 => 1) on the last step, with the LN cell, the Elman cell (Keras' SimpleRNN), LSTM and GRU.
// Géron's LN model predicts 10 steps at once; here every model forecasts one step, like forecast.cpp.
//
// Output (in --out, default out/custom_cell): history_<model>.csv, learning_curves.png, forecast.png,
// and `RESULT gradcheck=pass ln_rnn_val_mse=… …`.
#include <rewind.hpp>

#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "common/example.hpp"
#include "common/timeseries.hpp"

using namespace rwd;

/// Géron's LNSimpleRNNCell: a simple RNN cell whose pre-activation is layer-normalized,
///
///     h_t = tanh(LayerNorm(W_x x_t + W_h h_{t−1} + b)),     y_t = h_t,     h_{−1} = 0
///
/// LayerNorm normalizes each column (one example) over its `hidden` features, then scales and
/// shifts by learned (hidden,) vectors γ (starts at 1) and β (starts at 0); ε = 1e-3, Keras'.
/// Initialized like Keras' SimpleRNNCell: W_x Glorot-uniform, W_h orthogonal, b zero.
class LNSimpleRNNCell : public Cell {
 public:
  LNSimpleRNNCell(std::size_t input, std::size_t hidden, Generator& gen) : m_input(input), m_hidden(hidden) {
    W_x = register_parameter("W_x", init::glorot_uniform({hidden, input}, gen));
    W_h = register_parameter("W_h", init::orthogonal({hidden, hidden}, gen));
    b = register_parameter("b", init::zeros({hidden}));
    norm = register_module("norm", std::make_shared<LayerNorm>(hidden, 1e-3));
  }

  std::pair<Tensor, State> step(const Tensor& x, const State& state) override {
    check_step(x, state, 1);  // x (input, batch) or (input,), state {h} of the same batch
    Tensor h = tanh((*norm)(affine(W_x, x, b) + affine(W_h, state[0], Tensor())));
    return {h, {h}};
  }
  /// Zeros, in the parameters' dtype (float64 while gradcheck has promoted them).
  State initial_state(std::size_t batch) const override { return {initial_tensor(Tensor(), m_hidden, batch, W_x.dtype())}; }
  std::size_t input_size() const override { return m_input; }
  std::size_t output_size() const override { return m_hidden; }
  std::string repr() const override {
    return "LNSimpleRNNCell(" + std::to_string(m_input) + " => " + std::to_string(m_hidden) + ")";
  }

  Tensor W_x, W_h, b;
  std::shared_ptr<LayerNorm> norm;

 private:
  std::size_t m_input, m_hidden;
};

/// Two stacked layers of the LN cell, returning the last step's output: Recurrent takes the user's cell
/// from a factory, exactly as it builds the built-in ones.
Recurrent ln_rnn(std::size_t hidden, Generator& gen) {
  return Recurrent(
      1, [&gen, hidden](std::size_t in, std::size_t) { return std::make_shared<LNSimpleRNNCell>(in, hidden, gen); },
      {.num_layers = 2, .return_sequences = false});
}

int run(int argc, char** argv) {
  ex::Args args(argc, argv, "custom_cell");
  const auto start = std::chrono::steady_clock::now();
  const ex::ForecastData data;
  Generator gen(args.seed);

  // ---- 1. the cell steps like any other: Recur one call per step = Recurrent over the whole sequence ----
  {
    auto cell = std::make_shared<LNSimpleRNNCell>(1, 4, gen);
    Recurrent whole(std::vector<std::shared_ptr<Cell>>{cell});
    Recur stepper(cell);
    auto [x, y] = data.valid.batch({0, 1, 2});  // (50, 1, 3)
    NoGradGuard no_grad;
    const std::vector<double> ys = whole(x).to_vector();  // (50, 4, 3)
    double diff = 0;
    const std::vector<Tensor> steps = split_steps(x);
    for (std::size_t t = 0; t < steps.size(); ++t) {
      const std::vector<double> yt = stepper(steps[t]).to_vector();
      for (std::size_t k = 0; k < yt.size(); ++k) diff = std::max(diff, std::abs(yt[k] - ys[t * yt.size() + k]));
    }
    std::printf("%s, 50 calls of %s vs one call of %s on the whole sequence: max |difference| %g\n",
                cell->repr().c_str(), stepper.repr().c_str(), whole.repr().c_str(), diff);
  }

  // ---- 2. gradient check: two LN layers of 4 units + Dense(4 => 1), unrolled 5 steps, 3 series ----
  // The LN model's parameters start at special values (γ = 1, β = b = 0), so they are moved to random
  // ones first: a gradient that is only right at γ = 1 would otherwise pass.
  bool grad_ok = false;
  {
    Chain model(ln_rnn(4, gen), Dense(4, 1, {}, true, float32, gen));
    {
      NoGradGuard no_grad;
      for (auto& [name, p] : model.named_parameters()) p.assign(p + Tensor::uniform(p.shape(), -0.5, 0.5, gen));
    }
    auto [x_all, y] = data.valid.batch({0, 1, 2});
    Tensor x = slice(x_all, 0, 45, 50).detach().set_requires_grad().set_name("x");  // the last 5 steps, (5, 1, 3)
    std::vector<Tensor> inputs{x};
    for (auto& [name, p] : model.named_parameters()) inputs.push_back(p.set_name(name));
    GradcheckReport report = gradcheck(
        [&](const std::vector<Tensor>& in) { return mse_loss(model(in[0]), y.to(in[0].dtype())); }, inputs);
    std::cout << "\n" << model.repr() << "\n" << report << "\n";
    grad_ok = static_cast<bool>(report);
  }

  // ---- 3. trained on the forecasting task next to the built-in cells ----
  auto recurrent = [&](Recurrent r) {
    auto p = std::make_shared<Recurrent>(std::move(r));
    ex::keras_init(*p, gen);
    return p;
  };
  const RecurrentOptions last_of_2{.num_layers = 2, .return_sequences = false};
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> models;
  models.emplace_back("ln_rnn", std::make_shared<Chain>(ln_rnn(20, gen), Dense(20, 1, {}, true, float32, gen)));
  models.emplace_back("simple_rnn", std::make_shared<Chain>(recurrent(RNN(1, 20, "tanh", {}, last_of_2, gen)), Dense(20, 1, {}, true, float32, gen)));
  models.emplace_back("lstm", std::make_shared<Chain>(recurrent(LSTM(1, 20, {}, last_of_2, gen)), Dense(20, 1, {}, true, float32, gen)));
  models.emplace_back("gru", std::make_shared<Chain>(recurrent(GRU(1, 20, {}, last_of_2, gen)), Dense(20, 1, {}, true, float32, gen)));

  std::vector<ex::Trained> runs;
  for (auto& [name, m] : models) {
    const ex::TrainSpec spec{.lr = 1e-3, .epochs = args.quick ? 2u : 20u, .batch = 32, .max_batches = args.quick ? 4u : 0u};
    runs.push_back(ex::train_forecaster(name, *m, data, spec, gen, args));
  }

  std::printf("\nvalidation MSE (2000 series), 2 × 20 units + Dense(20 => 1), Adam lr 1e-3, %s\n",
              args.quick ? "--quick: a few batches only, not comparable" : "20 epochs");
  std::printf("  %-11s %7s %12s %10s\n", "model", "params", "val MSE", "s/epoch");
  bool finite = true;
  for (const ex::Trained& r : runs) {
    finite = finite && std::isfinite(r.val_mse);
    std::printf("  %-11s %7zu %12.6f %10.2f\n", r.name.c_str(), r.parameters, r.val_mse,
                r.seconds / static_cast<double>(r.history.epochs.size()));
  }
  ex::plot_learning_curves(args.path("learning_curves.png"), "a user-written LNSimpleRNNCell next to the built-in cells", runs);
  std::vector<std::pair<std::string, double>> preds;
  for (const ex::Trained& r : runs) preds.emplace_back(r.name, r.val_pred[0]);
  ex::plot_forecast(args.path("forecast.png"), data, 0, preds);
  std::printf("\nwrote %s/{history_<model>.csv, learning_curves.png, forecast.png} in %.1f s\n", args.out.c_str(),
              ex::seconds_since(start));

  std::vector<std::pair<std::string, std::string>> fields{{"gradcheck", grad_ok ? "pass" : "fail"}};
  for (const ex::Trained& r : runs) fields.emplace_back(r.name + "_val_mse", ex::num(r.val_mse));
  ex::result(fields);
  return grad_ok && finite ? 0 : 1;
}

int main(int argc, char** argv) { return ex::guard("custom_cell", [&] { return run(argc, argv); }); }
