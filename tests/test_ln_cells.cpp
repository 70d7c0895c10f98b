// The LayerNorm cells (nn/layer_norm_cells.hpp): BPTT gradients by finite differences (3 steps, two
// losses), a layer against PyTorch (a LayerNorm-LSTM and -GRU written from torch primitives in
// tests/ref/make_ln_refs.py, the numbers committed as tests/ref/torch_ln_*.npz), parameters saved and
// loaded by name, and how the layers print.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>

#include <rewind.hpp>

#include "support.hpp"

using namespace rwd;

namespace {

const std::filesystem::path ref_dir = test_ref_dir();

// Every parameter gets distinct values: the LayerNorms' gains start at 1 and biases at 0 otherwise,
// which would hide a gain and a bias swapped.
void randomize(Module& m, Generator& gen) {
  for (auto& [k, p] : m.named_parameters()) p.assign(Tensor::uniform(p.shape(), -0.8, 0.8, gen, p.dtype()));
}

// 3 steps of `cell` from s0 (or its learned initial state); the loss is the last output or every output.
void check_cell(Cell& cell, std::size_t batch, bool learned_state) {
  Generator gen(23);
  randomize(cell, gen);
  const Shape col = batch ? Shape{cell.input_size(), batch} : Shape{cell.input_size()};
  std::vector<Tensor> xs;
  for (int t = 0; t < 3; ++t) xs.push_back(Tensor::uniform(col, -1, 1, gen, float64).set_requires_grad().set_name("x" + std::to_string(t)));
  State s0;
  if (!learned_state)
    for (const Shape& s : cell.state_shapes(batch))
      s0.push_back(Tensor::uniform(s, -0.5, 0.5, gen, float64).set_requires_grad().set_name("s0_" + std::to_string(s0.size())));
  std::vector<Tensor> inputs;
  for (auto& [k, p] : cell.named_parameters()) inputs.push_back(p.set_name(k));
  inputs.insert(inputs.end(), xs.begin(), xs.end());
  inputs.insert(inputs.end(), s0.begin(), s0.end());
  for (bool last : {true, false}) {
    auto f = [&](const std::vector<Tensor>&) {
      State s = learned_state ? cell.initial_state(batch) : s0;
      std::vector<Tensor> ys;
      for (const Tensor& x : xs) {
        auto [y, next] = cell.step(x, s);
        ys.push_back(y);
        s = next;
      }
      return last ? ys.back() : stack(ys, 0);
    };
    GradcheckReport r = gradcheck(f, inputs);
    CHECK_MESSAGE(r.ok(), cell.repr() << (last ? ", last output" : ", all outputs") << "\n" << r.str());
  }
}

std::map<std::string, Tensor> load_ref(const std::string& name) {
  std::map<std::string, Tensor> a;
  for (const auto& [k, t] : load_npz((ref_dir / name).string())) a.emplace(k, t);
  return a;
}

double max_abs_diff(const Tensor& got, const Tensor& want, const std::string& what) {
  REQUIRE_MESSAGE(got.shape() == want.shape(), what << ": " << got.shape() << " vs PyTorch's " << want.shape());
  const std::vector<double> x = got.to_vector(), y = want.to_vector();
  double worst = 0;
  for (std::size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(x[i] - y[i]));
  CHECK_MESSAGE(worst <= 1e-10, what << ": max abs diff " << worst << " from PyTorch");
  return worst;
}

// The layer with the reference's parameters, run on its input from its initial states: outputs, final
// states, loss and every gradient against PyTorch's.
void check_against_torch(Recurrent& m, const std::string& file, bool lstm) {
  std::map<std::string, Tensor> ref = load_ref(file);
  std::size_t loaded = 0;
  for (auto& [k, p] : m.named_parameters()) {
    REQUIRE_MESSAGE(ref.count("param." + k), file << " lacks param." << k);
    p.assign(ref["param." + k]);
    ++loaded;
  }
  CHECK(loaded == (lstm ? 9u : 8u));
  Tensor x = ref["x"].detach().set_requires_grad();
  Tensor h0 = ref["h0"].detach().set_requires_grad();
  Tensor c0 = lstm ? ref["c0"].detach().set_requires_grad() : Tensor();
  State init{h0};
  if (lstm) init.push_back(c0);
  const Tensor out = m(x, Tensor(), {init});
  const State& fin = m.final_state();
  Tensor loss = sum(out * ref["w_out"]) + sum(fin[0] * ref["w_h"]);
  if (lstm) loss = loss + sum(fin[1] * ref["w_c"]);
  double d = max_abs_diff(out, ref["out"], file + " out");
  d = std::max(d, max_abs_diff(fin[0], ref["h_n"], file + " h_n"));
  if (lstm) d = std::max(d, max_abs_diff(fin[1], ref["c_n"], file + " c_n"));
  d = std::max(d, max_abs_diff(loss, ref["loss"], file + " loss"));
  loss.backward();
  double g = 0;
  for (auto& [k, p] : m.named_parameters()) g = std::max(g, max_abs_diff(p.grad(), ref["grad." + k], file + " d/d " + k));
  g = std::max(g, max_abs_diff(x.grad(), ref["grad.x"], file + " d/dx"));
  g = std::max(g, max_abs_diff(h0.grad(), ref["grad.h0"], file + " d/dh0"));
  if (lstm) g = std::max(g, max_abs_diff(c0.grad(), ref["grad.c0"], file + " d/dc0"));
  MESSAGE(m.repr() << " vs PyTorch: values max abs diff " << d << ", gradients " << g);
}

}  // namespace

TEST_CASE("ln cells: LayerNormLSTMCell gradients through 3 steps (batch, vector, learned h0 and c0)") {
  Generator gen(31);
  SUBCASE("batch of 2") {
    LayerNormLSTMCell c(3, 4, {.dtype = float64}, gen);
    check_cell(c, 2, false);
  }
  SUBCASE("a (input,) vector") {
    LayerNormLSTMCell c(2, 3, {.forget_bias = 1.0, .dtype = float64}, gen);
    check_cell(c, 0, false);
  }
  SUBCASE("learned initial state") {
    LayerNormLSTMCell c(2, 3, {.learn_initial_state = true, .dtype = float64}, gen);
    check_cell(c, 3, true);
  }
}

TEST_CASE("ln cells: LayerNormGRUCell gradients through 3 steps (batch, vector, learned h0)") {
  Generator gen(32);
  SUBCASE("batch of 2") {
    LayerNormGRUCell c(3, 4, {.dtype = float64}, gen);
    check_cell(c, 2, false);
  }
  SUBCASE("a (input,) vector") {
    LayerNormGRUCell c(2, 3, {.dtype = float64}, gen);
    check_cell(c, 0, false);
  }
  SUBCASE("learned initial state") {
    LayerNormGRUCell c(2, 3, {.learn_initial_state = true, .dtype = float64}, gen);
    check_cell(c, 3, true);
  }
}

TEST_CASE("ln cells: a LayerNorm-LSTM and -GRU layer match PyTorch written from primitives (values and gradients)") {
  SUBCASE("LayerNormLSTM(3, 4)") {
    Recurrent m = LayerNormLSTM(3, 4, {.dtype = float64});
    check_against_torch(m, "torch_ln_lstm.npz", true);
  }
  SUBCASE("LayerNormGRU(3, 4)") {
    Recurrent m = LayerNormGRU(3, 4, {.dtype = float64});
    check_against_torch(m, "torch_ln_gru.npz", false);
  }
}

TEST_CASE("ln cells: one LayerNormLSTMCell step against the equations by hand") {
  // Batch of one, hidden 1: LN over 4 rows of the gate block and over the 1-row cell state (which
  // normalises to 0, so h = σ(o) · tanh(β_c)) — an independent check of the gate order and of where
  // the LayerNorms sit.
  LayerNormLSTMCell cell(1, 1, {.dtype = float64});  // ε = 1e-5
  cell.weight_ih.assign(Tensor::from_vector(std::vector<double>{0.5, -1.0, 2.0, 1.5}, {4, 1}, float64));
  cell.weight_hh.assign(Tensor::from_vector(std::vector<double>{1.0, 0.5, -0.5, 2.0}, {4, 1}, float64));
  cell.bias.assign(Tensor::from_vector(std::vector<double>{0.1, 0.2, 0.3, 0.4}, {4}, float64));
  cell.ln_c->bias.assign(Tensor::from_vector(std::vector<double>{0.7}, {1}, float64));
  const double x = 2.0, h = -1.0, c = 0.5;
  auto norm = [](std::vector<double> v) {
    double mu = 0, var = 0;
    for (double a : v) mu += a / 4;
    for (double a : v) var += (a - mu) * (a - mu) / 4;
    for (double& a : v) a = (a - mu) / std::sqrt(var + 1e-5);
    return v;
  };
  const std::vector<double> gx = norm({0.5 * x, -1.0 * x, 2.0 * x, 1.5 * x}), gh = norm({1.0 * h, 0.5 * h, -0.5 * h, 2.0 * h});
  const double b[4] = {0.1, 0.2, 0.3, 0.4};
  double a[4];
  for (int k = 0; k < 4; ++k) a[k] = gx[k] + gh[k] + b[k];
  auto sig = [](double v) { return 1 / (1 + std::exp(-v)); };
  const double c_next = sig(a[1]) * c + sig(a[0]) * std::tanh(a[2]);
  const double h_next = sig(a[3]) * std::tanh(0.7);
  auto [y, s] = cell.step(Tensor::from_vector(std::vector<double>{x}, {1, 1}, float64),
                          {Tensor::from_vector(std::vector<double>{h}, {1, 1}, float64), Tensor::from_vector(std::vector<double>{c}, {1, 1}, float64)});
  CHECK(s[1].to_vector()[0] == doctest::Approx(c_next).epsilon(1e-12));
  CHECK(y.to_vector()[0] == doctest::Approx(h_next).epsilon(1e-12));
}

TEST_CASE("ln cells: parameters by name, save and load round trip, printing") {
  Generator gen(33);
  Recurrent a = LayerNormLSTM(3, 5, {}, {.num_layers = 2, .bidirectional = true}, gen);
  std::vector<std::string> names;
  for (auto& [k, p] : a.named_parameters()) names.push_back(k);
  CHECK(names.size() == 4 * 9);
  const std::vector<std::string> first(names.begin(), names.begin() + 9);
  CHECK(first == std::vector<std::string>{"layer0.cell.weight_ih", "layer0.cell.weight_hh", "layer0.cell.bias",
                                          "layer0.cell.ln_ih.weight", "layer0.cell.ln_ih.bias", "layer0.cell.ln_hh.weight",
                                          "layer0.cell.ln_hh.bias", "layer0.cell.ln_c.weight", "layer0.cell.ln_c.bias"});
  CHECK(a.repr() == "LayerNormLSTM(3 => 5, layers=2, bidirectional)");
  CHECK(LayerNormGRU(2, 4).repr() == "LayerNormGRU(2 => 4)");
  std::ostringstream os;
  os << a;
  CHECK(os.str() == a.repr());
  // Per direction: layer 0 (20·3 + 20·5 + 20) + LN (40 + 40 + 10) = 270; layer 1 takes both directions
  // of layer 0, 10 features: (20·10 + 20·5 + 20) + 90 = 410.
  CHECK(contains(a.summary(), "layer1_reverse.cell.ln_c   LayerNorm(5)"));
  CHECK(contains(a.summary(), "total: 1360 parameters"));

  randomize(a, gen);  // every LN gain and bias away from 1 and 0, so a lost one shows
  const std::filesystem::path file = std::filesystem::temp_directory_path() / "rewind_test_ln_cells.npz";
  save(a, file.string());
  Generator other(34);
  Recurrent b = LayerNormLSTM(3, 5, {}, {.num_layers = 2, .bidirectional = true}, other);
  const Tensor x = Tensor::uniform({4, 3, 2}, -1, 1, gen);
  CHECK(a(x).to_vector() != b(x).to_vector());
  load(b, file.string());
  CHECK(a(x).to_vector() == b(x).to_vector());
  std::filesystem::remove(file);

  Recurrent gru = LayerNormGRU(3, 4, {}, {}, gen);
  randomize(gru, gen);
  const std::filesystem::path gfile = std::filesystem::temp_directory_path() / "rewind_test_ln_gru.npz";
  save(gru, gfile.string());
  Recurrent gru2 = LayerNormGRU(3, 4, {}, {}, other);
  load(gru2, gfile.string());
  CHECK(gru(x).to_vector() == gru2(x).to_vector());
  std::filesystem::remove(gfile);
}

TEST_CASE("ln cells: with one input feature a LayerNormLSTMCell sees only the sign of its input (W_ih x normalised alone)") {
  // LN_ih(x·w) = sign(x)·(w − mean w)/std w once x²·var w ≫ ε: the documented consequence of Ba et al.'s
  // separate normalisation. Had the sum W_ih x + W_hh h been normalised instead, a nonzero h would
  // let |x| through.
  Generator gen(35);
  LayerNormLSTMCell cell(1, 4, {.eps = 1e-12, .dtype = float64}, gen);
  randomize(cell, gen);
  const State s{Tensor::uniform({4, 2}, -1, 1, gen, float64), Tensor::uniform({4, 2}, -1, 1, gen, float64)};
  auto y = [&](double x) { return cell.step(Tensor::full({1, 2}, x, float64), s).first.to_vector(); };
  const std::vector<double> small = y(0.5), big = y(2.0), negative = y(-2.0);
  for (std::size_t k = 0; k < small.size(); ++k) CHECK(small[k] == doctest::Approx(big[k]).epsilon(1e-9));
  CHECK(negative != big);
}
