#include "layer_norm_cells.hpp"

#include "../autograd/ops.hpp"
#include "init.hpp"

namespace rwd {

// ---- LayerNormLSTMCell ----

LayerNormLSTMCell::LayerNormLSTMCell(std::size_t input, std::size_t hidden, LayerNormLSTMOptions options, Generator& gen)
    : m_input(input), m_hidden(hidden) {
  check_size("LayerNormLSTMCell", "input", input);
  check_size("LayerNormLSTMCell", "hidden", hidden);
  const Dtype dt = options.dtype;
  const std::size_t h = hidden;
  weight_ih = register_parameter("weight_ih", init::uniform_fan_in({4 * h, input}, h, gen, dt));
  weight_hh = register_parameter("weight_hh", init::uniform_fan_in({4 * h, h}, h, gen, dt));
  bias = register_parameter("bias", init::lstm_gate_bias(h, options.forget_bias, gen, dt));
  ln_ih = register_module("ln_ih", std::make_shared<LayerNorm>(4 * h, options.eps, true, dt));
  ln_hh = register_module("ln_hh", std::make_shared<LayerNorm>(4 * h, options.eps, true, dt));
  ln_c = register_module("ln_c", std::make_shared<LayerNorm>(h, options.eps, true, dt));
  if (options.learn_initial_state) {
    h0 = register_parameter("h0", Tensor::zeros({h}, dt));
    c0 = register_parameter("c0", Tensor::zeros({h}, dt));
  }
}

std::pair<Tensor, State> LayerNormLSTMCell::step(const Tensor& x, const State& state) {
  const std::size_t batch = check_step(x, state, 2);
  const Tensor &h = state[0], &c = state[1];
  const Tensor b = reshape(bias, batch ? Shape{4 * m_hidden, 1} : Shape{4 * m_hidden});
  // The two products normalised apart (Ba et al. eq. 20), so neither's scale swamps the other's.
  std::vector<Tensor> gates = chunk((*ln_ih)(affine(weight_ih, x)) + (*ln_hh)(affine(weight_hh, h)) + b, 4, 0);
  Tensor c_next = sigmoid(gates[1]) * c + sigmoid(gates[0]) * tanh(gates[2]);
  Tensor h_next = sigmoid(gates[3]) * tanh((*ln_c)(c_next));  // eq. 22: only the tanh sees LN(c)
  return {h_next, {h_next, c_next}};
}

State LayerNormLSTMCell::initial_state(std::size_t batch) const {
  const Dtype dt = weight_ih.dtype();
  return {initial_tensor(h0, m_hidden, batch, dt), initial_tensor(c0, m_hidden, batch, dt)};
}

std::string LayerNormLSTMCell::repr() const {
  return "LayerNormLSTMCell(" + std::to_string(m_input) + " => " + std::to_string(m_hidden) + ")";
}

// ---- LayerNormGRUCell ----

LayerNormGRUCell::LayerNormGRUCell(std::size_t input, std::size_t hidden, LayerNormGRUOptions options, Generator& gen)
    : m_input(input), m_hidden(hidden) {
  check_size("LayerNormGRUCell", "input", input);
  check_size("LayerNormGRUCell", "hidden", hidden);
  const Dtype dt = options.dtype;
  const std::size_t h = hidden;
  weight_ih = register_parameter("weight_ih", init::uniform_fan_in({3 * h, input}, h, gen, dt));
  weight_hh = register_parameter("weight_hh", init::uniform_fan_in({3 * h, h}, h, gen, dt));
  bias_ih = register_parameter("bias_ih", init::uniform_fan_in({3 * h}, h, gen, dt));
  bias_hh = register_parameter("bias_hh", init::uniform_fan_in({3 * h}, h, gen, dt));
  ln_ih = register_module("ln_ih", std::make_shared<LayerNorm>(3 * h, options.eps, true, dt));
  ln_hh = register_module("ln_hh", std::make_shared<LayerNorm>(3 * h, options.eps, true, dt));
  if (options.learn_initial_state) h0 = register_parameter("h0", Tensor::zeros({h}, dt));
}

std::pair<Tensor, State> LayerNormGRUCell::step(const Tensor& x, const State& state) {
  return advance(x, state, Tensor());
}

std::pair<Tensor, State> LayerNormGRUCell::step_dropped(const Tensor& x, const State& state, const Tensor& h_mask) {
  return advance(x, state, h_mask);
}

std::pair<Tensor, State> LayerNormGRUCell::advance(const Tensor& x, const State& state, const Tensor& h_mask) {
  const std::size_t batch = check_step(x, state, 1);
  const Tensor& h = state[0];
  const Tensor h_in = h_mask.defined() ? masked_h(state, h_mask, batch)[0] : h;  // as GRUCell's
  const Shape col = batch ? Shape{3 * m_hidden, 1} : Shape{3 * m_hidden};
  std::vector<Tensor> gx = chunk((*ln_ih)(affine(weight_ih, x)) + reshape(bias_ih, col), 3, 0);
  std::vector<Tensor> gh = chunk((*ln_hh)(affine(weight_hh, h_in)) + reshape(bias_hh, col), 3, 0);
  Tensor r = sigmoid(gx[0] + gh[0]);
  Tensor z = sigmoid(gx[1] + gh[1]);
  Tensor n = tanh(gx[2] + r * gh[2]);
  Tensor h_next = n + z * (h - n);  // (1 − z) ⊙ n + z ⊙ h, as GRUCell
  return {h_next, {h_next}};
}

State LayerNormGRUCell::initial_state(std::size_t batch) const {
  return {initial_tensor(h0, m_hidden, batch, weight_ih.dtype())};
}

std::string LayerNormGRUCell::repr() const {
  return "LayerNormGRUCell(" + std::to_string(m_input) + " => " + std::to_string(m_hidden) + ")";
}

// ---- factories ----

Recurrent LayerNormLSTM(std::size_t input, std::size_t hidden, LayerNormLSTMOptions options, RecurrentOptions recurrent,
                        Generator& gen) {
  check_size("LayerNormLSTM", "input", input);
  check_size("LayerNormLSTM", "hidden", hidden);
  return Recurrent(
      input, [&](std::size_t in, std::size_t) { return std::make_shared<LayerNormLSTMCell>(in, hidden, options, gen); },
      recurrent, gen);
}
Recurrent LayerNormLSTM(std::size_t input, std::size_t hidden, LayerNormLSTMOptions options, Generator& gen) {
  return LayerNormLSTM(input, hidden, options, {}, gen);
}

Recurrent LayerNormGRU(std::size_t input, std::size_t hidden, LayerNormGRUOptions options, RecurrentOptions recurrent,
                       Generator& gen) {
  check_size("LayerNormGRU", "input", input);
  check_size("LayerNormGRU", "hidden", hidden);
  return Recurrent(
      input, [&](std::size_t in, std::size_t) { return std::make_shared<LayerNormGRUCell>(in, hidden, options, gen); },
      recurrent, gen);
}
Recurrent LayerNormGRU(std::size_t input, std::size_t hidden, LayerNormGRUOptions options, Generator& gen) {
  return LayerNormGRU(input, hidden, options, {}, gen);
}

}  // namespace rwd
