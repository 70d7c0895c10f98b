// PyTorch weights in rewind: nn.RNN (tanh, relu), nn.LSTM, nn.GRU — stacked and bidirectional —
// nn.Embedding and nn.Linear load from their state_dicts and reproduce PyTorch's outputs, final
// states and every gradient (weights, input, initial states) to 1e-5 in float64. The numbers come
// from tests/ref/make_torch_refs.py (PyTorch 1.13), committed as tests/ref/torch_*.npz: no Python
// here. Then the importer's refusals: missing, unexpected and misshapen keys, cells PyTorch has no
// keys for, and no half-loaded model.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <rewind.hpp>

#include "support.hpp"

using namespace rwd;

namespace {

const std::filesystem::path ref_dir = test_ref_dir();

constexpr double tol = 1e-5;

// One reference file: its arrays by key, and the state_dict part (keys "state.…") as a whole.
struct Ref {
  NamedTensors raw;
  std::map<std::string, Tensor> a;
  const Tensor& operator[](const std::string& key) const {
    auto it = a.find(key);
    if (it == a.end()) throw ValueError("reference file lacks '" + key + "'");
    return it->second;
  }
  bool has(const std::string& key) const { return a.count(key) > 0; }
};

Ref load_ref(const std::string& name) {
  Ref r;
  r.raw = load_npz((ref_dir / name).string());
  for (const auto& [k, t] : r.raw) r.a.emplace(k, t);
  return r;
}

double max_abs_diff(const Tensor& got, const Tensor& want, const std::string& what) {
  REQUIRE_MESSAGE(got.defined(), what << ": no value");
  REQUIRE_MESSAGE(got.shape() == want.shape(), what << ": " << got.shape() << " vs PyTorch's " << want.shape());
  const std::vector<double> x = got.to_vector(), y = want.to_vector();
  double worst = 0;
  for (std::size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(x[i] - y[i]));
  CHECK_MESSAGE(worst <= tol, what << ": max abs diff " << worst << " from PyTorch");
  return worst;
}

// Row i of a (n, H, B) stack of states, as (H, B).
Tensor state_at(const Tensor& stacked, std::size_t i) { return squeeze(slice(stacked, 0, i, i + 1), 0); }

// Loads the file's state_dict into `m`, reruns PyTorch's computation — outputs, final states, the loss
// Σ out⊙w_out + Σ h_n⊙w_h (+ Σ c_n⊙w_c) — and compares every value and gradient.
void check_against_torch(const std::string& file, Recurrent& m) {
  const Ref ref = load_ref(file);
  load_torch(m, ref.raw, "state.");
  const bool lstm = ref.has("c0");
  Tensor x = ref["x"].detach().set_requires_grad();
  Tensor h0 = ref["h0"].detach().set_requires_grad();
  Tensor c0 = lstm ? ref["c0"].detach().set_requires_grad() : Tensor();
  std::vector<State> initial;
  for (std::size_t i = 0; i < h0.dim(0); ++i)
    initial.push_back(lstm ? State{state_at(h0, i), state_at(c0, i)} : State{state_at(h0, i)});

  RecurrentRun run = m.run(split_steps(x), {}, initial);
  const Tensor out = stack_steps(run.outputs);
  std::vector<Tensor> hs, cs;
  for (const State& s : run.final_states) {
    hs.push_back(s[0]);
    if (lstm) cs.push_back(s[1]);
  }
  const Tensor h_n = stack(hs, 0);
  Tensor loss = sum(out * ref["w_out"]) + sum(h_n * ref["w_h"]);
  double d_out = max_abs_diff(out, ref["out"], file + " out");
  d_out = std::max(d_out, max_abs_diff(h_n, ref["h_n"], file + " h_n"));
  if (lstm) {
    const Tensor c_n = stack(cs, 0);
    d_out = std::max(d_out, max_abs_diff(c_n, ref["c_n"], file + " c_n"));
    loss = loss + sum(c_n * ref["w_c"]);
  }
  d_out = std::max(d_out, max_abs_diff(loss, ref["loss"], file + " loss"));

  m.zero_grad(true);
  loss.backward();
  double d_grad = 0;
  std::size_t n_grads = 0;
  for (const auto& [key, p] : torch_keys(m)) {
    d_grad = std::max(d_grad, max_abs_diff(p.grad(), ref["grad." + key], file + " d/d " + key));
    ++n_grads;
  }
  d_grad = std::max(d_grad, max_abs_diff(x.grad(), ref["grad.x"], file + " d/dx"));
  d_grad = std::max(d_grad, max_abs_diff(h0.grad(), ref["grad.h0"], file + " d/dh0"));
  if (lstm) d_grad = std::max(d_grad, max_abs_diff(c0.grad(), ref["grad.c0"], file + " d/dc0"));
  CHECK(n_grads == m.named_parameters().size());
  MESSAGE(m.repr() << " vs PyTorch: outputs/final states/loss max abs diff " << d_out << "; gradients (" << n_grads
                   << " weights, input, initial states) max abs diff " << d_grad);
}

// PyTorch's EmbGruFc of the reference script, with the same attribute names, so one prefix loads it.
class EmbGruFc : public Module {
 public:
  EmbGruFc()
      : emb(register_module("emb", std::make_shared<Embedding>(7, 3, float64))),
        rnn(register_module("rnn", std::make_shared<Recurrent>(GRU(3, 4, {.dtype = float64})))),
        fc(register_module("fc", std::make_shared<TimeDistributed>(Dense(4, 2, {}, true, float64)))) {}
  Tensor forward(const Tensor& tokens) override { return (*fc)((*rnn)((*emb)(tokens))); }
  std::string repr() const override { return "EmbGruFc"; }

  std::shared_ptr<Embedding> emb;
  std::shared_ptr<Recurrent> rnn;
  std::shared_ptr<TimeDistributed> fc;
};

// A cell of the user's own: h_t = tanh(W x_t) + 0.5 h_{t−1}. Not PyTorch's.
class ScaledTanhCell : public Cell {
 public:
  ScaledTanhCell(std::size_t input, std::size_t hidden) : m_input(input), m_hidden(hidden) {
    W = register_parameter("W", Tensor::ones({hidden, input}));
  }
  std::pair<Tensor, State> step(const Tensor& x, const State& s) override {
    Tensor h = tanh(matmul(W, x)) + s[0] * 0.5;
    return {h, {h}};
  }
  State initial_state(std::size_t batch) const override { return {Tensor::zeros({m_hidden, batch})}; }
  std::size_t input_size() const override { return m_input; }
  std::size_t output_size() const override { return m_hidden; }
  std::string repr() const override { return "ScaledTanhCell(" + std::to_string(m_input) + " => " + std::to_string(m_hidden) + ")"; }
  Tensor W;

 private:
  std::size_t m_input, m_hidden;
};

std::vector<std::vector<double>> snapshot(const Module& m) {
  std::vector<std::vector<double>> v;
  for (const Tensor& p : m.parameters()) v.push_back(p.to_vector());
  return v;
}

NamedTensors without(NamedTensors sd, const std::string& key) {
  sd.erase(std::remove_if(sd.begin(), sd.end(), [&](const auto& kv) { return kv.first == key; }), sd.end());
  return sd;
}

NamedTensors state_of(const Ref& ref) {
  NamedTensors sd;
  for (const auto& [k, t] : ref.raw)
    if (k.rfind("state.", 0) == 0) sd.emplace_back(k.substr(6), t);
  return sd;
}

}  // namespace

TEST_CASE("torch: nn.RNN, nn.LSTM, nn.GRU weights reproduce PyTorch's outputs and gradients (float64, 1e-5)") {
  SUBCASE("nn.RNN(3, 4), tanh") {
    Recurrent m = RNN(3, 4, "tanh", {.dtype = float64});
    check_against_torch("torch_rnn_tanh.npz", m);
  }
  SUBCASE("nn.RNN(3, 4, num_layers=2, nonlinearity='relu')") {
    Recurrent m = RNN(3, 4, "relu", {.dtype = float64}, {.num_layers = 2});
    check_against_torch("torch_rnn_relu.npz", m);
  }
  SUBCASE("nn.LSTM(3, 4, num_layers=2)") {
    Recurrent m = LSTM(3, 4, {.dtype = float64}, {.num_layers = 2});
    check_against_torch("torch_lstm.npz", m);
  }
  SUBCASE("nn.GRU(3, 4)") {
    Recurrent m = GRU(3, 4, {.dtype = float64});
    check_against_torch("torch_gru.npz", m);
  }
  SUBCASE("nn.LSTM(3, 4, num_layers=2, bidirectional=True)") {
    Recurrent m = LSTM(3, 4, {.dtype = float64}, {.num_layers = 2, .bidirectional = true});
    check_against_torch("torch_lstm_bidir.npz", m);
  }
  SUBCASE("nn.GRU(3, 4, bidirectional=True)") {
    Recurrent m = GRU(3, 4, {.dtype = float64}, {.bidirectional = true});
    check_against_torch("torch_gru_bidir.npz", m);
  }
}

TEST_CASE("torch: nn.Embedding → nn.GRU → nn.Linear on every step, loaded from the .npz by one prefix") {
  const std::string file = (ref_dir / "torch_emb_gru_fc.npz").string();
  const Ref ref = load_ref("torch_emb_gru_fc.npz");
  EmbGruFc model;
  load_torch(model, file, "state.");  // emb.weight, rnn.weight_ih_l0, …, fc.weight, fc.bias
  const Tensor out = model(ref["x"]);
  double d_out = max_abs_diff(out, ref["out"], "EmbGruFc out");
  const Tensor loss = sum(out * ref["w_out"]);
  d_out = std::max(d_out, max_abs_diff(loss, ref["loss"], "EmbGruFc loss"));
  loss.backward();
  double d_grad = 0;
  const NamedTensors keys = torch_keys(model);
  CHECK(keys.size() == 7);
  for (const auto& [key, p] : keys) d_grad = std::max(d_grad, max_abs_diff(p.grad(), ref["grad." + key], "EmbGruFc d/d " + key));
  MESSAGE("Embedding → GRU → Linear vs PyTorch: outputs max abs diff " << d_out << "; gradients max abs diff " << d_grad);

  // Each layer alone, by its own prefix (the Linear straight into a Dense).
  Dense fc(4, 2, {}, true, float64);
  load_torch(fc, ref.raw, "state.fc.");
  CHECK(fc.weight.to_vector() == ref["state.fc.weight"].to_vector());
  CHECK(fc.bias.to_vector() == ref["state.fc.bias"].to_vector());
  Embedding emb(7, 3, float64);
  load_torch(emb, ref.raw, "state.emb.");
  CHECK(emb.weight.to_vector() == ref["state.emb.weight"].to_vector());
}

TEST_CASE("torch: the key mapping") {
  Recurrent m = LSTM(3, 4, {}, {.num_layers = 2, .bidirectional = true});
  std::vector<std::string> keys;
  for (const auto& [k, p] : torch_keys(m)) keys.push_back(k);
  REQUIRE(keys.size() == 16);
  CHECK(keys[0] == "weight_ih_l0");
  CHECK(keys[3] == "bias_hh_l0");
  CHECK(keys[4] == "weight_ih_l0_reverse");
  CHECK(keys[15] == "bias_hh_l1_reverse");
  CHECK(torch_keys(m)[4].second.same(static_cast<LSTMCell&>(m.cell(0, true)).weight_ih));
  // nn.LSTMCell's keys for a Recur or a bare cell; nn.Sequential's for a Chain.
  Recur r(GRUCell(2, 3));
  CHECK(torch_keys(r)[1].first == "weight_hh");
  Chain c(Dense(2, 3), Act("tanh"), Dense(3, 1));
  CHECK(torch_keys(c, "net.")[2].first == "net.2.weight");
}

TEST_CASE("torch: missing, unexpected and misshapen keys are refused by name, and nothing is half-loaded") {
  const Ref ref = load_ref("torch_lstm.npz");
  const NamedTensors sd = state_of(ref);
  Recurrent m = LSTM(3, 4, {.dtype = float64}, {.num_layers = 2});
  const auto before = snapshot(m);

  CHECK_THROWS_WITH_AS(load_torch(m, without(sd, "weight_hh_l1")), "load_torch: LSTM(3 => 4, layers=2): missing key 'weight_hh_l1'",
                       ValueError);
  NamedTensors extra = sd;
  extra.emplace_back("weight_hr_l0", Tensor::zeros({16, 2}, float64));
  CHECK_THROWS_WITH_AS(load_torch(m, extra),
                       "load_torch: LSTM(3 => 4, layers=2): unexpected key 'weight_hr_l0' (the model takes 8 keys)", ValueError);
  CHECK_THROWS_WITH_AS(load_torch(m, ref.raw, "nope."),
                       "load_torch: LSTM(3 => 4, layers=2): missing keys 'nope.weight_ih_l0', 'nope.weight_hh_l0', "
                       "'nope.bias_ih_l0', 'nope.bias_hh_l0', 'nope.weight_ih_l1', 'nope.weight_hh_l1', 'nope.bias_ih_l1', "
                       "'nope.bias_hh_l1' (under the prefix 'nope.')",
                       ValueError);
  // Layer 0 fits; layer 1's recurrent weight does not: nothing at all may change.
  NamedTensors bad = sd;
  for (auto& [k, t] : bad)
    if (k == "weight_hh_l1") t = Tensor::zeros({16, 5}, float64);
  CHECK_THROWS_WITH_AS(load_torch(m, bad),
                       "load_torch: LSTM(3 => 4, layers=2): key 'weight_hh_l1' is (16, 5) in the state_dict but "
                       "layer1.cell.weight_hh is (16, 4)",
                       ShapeError);
  CHECK(snapshot(m) == before);
  Recurrent wide = LSTM(5, 4, {.dtype = float64}, {.num_layers = 2});
  CHECK_THROWS_WITH_AS(load_torch(wide, sd),
                       "load_torch: LSTM(5 => 4, layers=2): key 'weight_ih_l0' is (16, 3) in the state_dict but "
                       "layer0.cell.weight_ih is (16, 5)",
                       ShapeError);
  NamedTensors twice = sd;
  twice.push_back(sd[0]);
  CHECK_THROWS_WITH_AS(load_torch(m, twice), "load_torch: LSTM(3 => 4, layers=2): key 'weight_ih_l0' appears twice in the state_dict",
                       ValueError);
  CHECK(snapshot(m) == before);

  // Non-strict: loads what is there, leaves the rest.
  load_torch(m, without(sd, "bias_hh_l1"), "", false);
  CHECK(static_cast<LSTMCell&>(m.cell(1)).weight_hh.to_vector() == ref["state.weight_hh_l1"].to_vector());
  CHECK(static_cast<LSTMCell&>(m.cell(1)).bias_hh.to_vector() == before[7]);

  // The middle way: every expected key, the others ignored — a 2-layer state_dict does not load into
  // a 1-layer model silently (partial would), and extra keys do not stop a full one (exact would).
  Recurrent one = LSTM(3, 4, {.dtype = float64});
  CHECK_THROWS_AS(load_torch(one, sd), ValueError);                                  // exact: unexpected l1
  CHECK_NOTHROW(load_torch(one, sd, "", TorchKeys::ignore_unexpected));                 // l0 is all there
  CHECK(static_cast<LSTMCell&>(one.cell(0)).weight_ih.to_vector() == ref["state.weight_ih_l0"].to_vector());
  Recurrent two = LSTM(3, 4, {.dtype = float64}, {.num_layers = 2});
  const std::string missing =
      message_of<ValueError>([&] { load_torch(two, without(sd, "bias_hh_l1"), "", TorchKeys::ignore_unexpected); });
  CHECK(contains(missing, "missing key 'bias_hh_l1'"));
  NamedTensors more = sd;
  more.emplace_back("optimizer.step", Tensor::zeros({1}, float64));
  CHECK_NOTHROW(load_torch(two, more, "", TorchKeys::ignore_unexpected));
  CHECK_THROWS_AS(load_torch(two, more, "", TorchKeys::exact), ValueError);

  Dense d(4, 2);
  CHECK_THROWS_WITH_AS(load_torch(d, NamedTensors{{"weight", Tensor::zeros({2, 3})}, {"bias", Tensor::zeros({2})}}),
                       "load_torch: Dense(4 => 2): key 'weight' is (2, 3) in the state_dict but weight is (2, 4)", ShapeError);
}

TEST_CASE("torch: cells PyTorch has no keys for are refused, naming why") {
  const NamedTensors none;
  Recurrent peep = LSTM(3, 4, {.peephole = true});
  CHECK_THROWS_WITH_AS(load_torch(peep, none),
                       "load_torch: LSTM(3 => 4, peephole): LSTMCell(3 => 4, peephole) has peephole weights (w_ci, w_cf, w_co) "
                       "— PyTorch has no key for it",
                       ValueError);
  Recurrent before = GRU(3, 4, {.reset_after = false});
  CHECK_THROWS_WITH_AS(load_torch(before, none),
                       "load_torch: GRU(3 => 4, reset_before): GRUCell(3 => 4, reset_before) applies the reset gate before the "
                       "recurrent product (PyTorch's GRU applies it after) — PyTorch has no key for it",
                       ValueError);
  Recurrent learned = RNN(3, 4, "tanh", {.learn_initial_state = true});
  CHECK_THROWS_WITH_AS(load_torch(learned, none),
                       "load_torch: RNN(3 => 4, tanh): RNNCell(3 => 4, tanh) has a learned initial state (h0) — PyTorch has no key for it",
                       ValueError);
  Recurrent builtin(2, [](std::size_t in, std::size_t) { return std::make_shared<RNNCell>(in, 3); });
  CHECK(torch_keys(builtin).size() == 4);  // a built-in cell through the generic constructor is fine
  Recurrent custom(2, [](std::size_t in, std::size_t) { return std::make_shared<ScaledTanhCell>(in, 3); });
  CHECK_THROWS_WITH_AS(load_torch(custom, none),
                       "load_torch: ScaledTanh(2 => 3): layer 0 is ScaledTanhCell(2 => 3), not an RNNCell, "
                       "LSTMCell or GRUCell — PyTorch's nn.RNN/LSTM/GRU keys do not describe it",
                       ValueError);
}

TEST_CASE("torch: h0/c0 and h_n/c_n convert between PyTorch's stacked layout and per-layer states") {
  const Ref ref = load_ref("torch_lstm.npz");  // 2 layers, hidden 4, batch 3; states stored (layers, H, B)
  Recurrent m = LSTM(3, 4, {.dtype = float64}, {.num_layers = 2});
  load_torch(m, ref.raw, "state.");
  // PyTorch's own layout, (layers·dirs, batch, hidden), as torch.nn.LSTM takes h0 and returns h_n.
  const Tensor h0 = permute(ref["h0"], {0, 2, 1}), c0 = permute(ref["c0"], {0, 2, 1});
  const std::vector<State> initial = from_torch_states({h0, c0});
  REQUIRE(initial.size() == 2);
  CHECK(initial[1][1].shape() == Shape{4, 3});
  RecurrentRun run = m.run(split_steps(ref["x"]), {}, initial);
  const std::vector<Tensor> hn = to_torch_states(run.final_states);
  REQUIRE(hn.size() == 2);
  CHECK(hn[0].shape() == Shape{2, 3, 4});
  CHECK(max_abs_diff(hn[0], permute(ref["h_n"], {0, 2, 1}), "h_n") <= 1e-12);
  CHECK(max_abs_diff(hn[1], permute(ref["c_n"], {0, 2, 1}), "c_n") <= 1e-12);
  // Round trip, exactly.
  const std::vector<Tensor> back = to_torch_states(initial);
  CHECK(back[0].to_vector() == h0.to_vector());
  CHECK(back[1].to_vector() == c0.to_vector());
  // Differentiable: a loss on the stacked h_n reaches h0 through both conversions.
  Tensor h0v = h0.detach().set_requires_grad();
  RecurrentRun again = m.run(split_steps(ref["x"]), {}, from_torch_states({h0v, c0}));
  sum(to_torch_states(again.final_states)[0]).backward();
  CHECK(h0v.grad().shape() == h0.shape());
  // Mismatched inputs are refused by name.
  CHECK_THROWS_AS(from_torch_states({h0, Tensor::zeros({2, 3}, float64)}), ShapeError);
  CHECK_THROWS_AS(to_torch_states({State{Tensor::zeros({4, 3})}, State{Tensor::zeros({4, 2})}}), ShapeError);
  CHECK_THROWS_AS(to_torch_states({}), ValueError);
}
