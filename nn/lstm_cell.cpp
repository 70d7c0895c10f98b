#include "lstm_cell.hpp"

#include <typeinfo>

#include "../autograd/ops.hpp"
#include "init.hpp"

namespace rwd {

LSTMCell::LSTMCell(std::size_t input, std::size_t hidden, LSTMOptions options, Generator& gen)
    : m_input(input), m_hidden(hidden) {
  check_size("LSTMCell", "input", input);
  check_size("LSTMCell", "hidden", hidden);
  const Dtype dt = options.dtype;
  const std::size_t h = hidden;
  weight_ih = register_parameter("weight_ih", init::uniform_fan_in({4 * h, input}, h, gen, dt));
  weight_hh = register_parameter("weight_hh", init::uniform_fan_in({4 * h, h}, h, gen, dt));
  bias_ih = register_parameter("bias_ih", init::lstm_gate_bias(h, options.forget_bias, gen, dt));
  bias_hh = register_parameter("bias_hh", init::uniform_fan_in({4 * h}, h, gen, dt));
  if (options.peephole) {
    w_ci = register_parameter("w_ci", Tensor::zeros({h}, dt));
    w_cf = register_parameter("w_cf", Tensor::zeros({h}, dt));
    w_co = register_parameter("w_co", Tensor::zeros({h}, dt));
  }
  if (options.learn_initial_state) {
    h0 = register_parameter("h0", Tensor::zeros({h}, dt));
    c0 = register_parameter("c0", Tensor::zeros({h}, dt));
  }
}

std::pair<Tensor, State> LSTMCell::step(const Tensor& x, const State& state) {
  const std::size_t batch = check_step(x, state, 2);
  return advance(affine(weight_ih, x, bias_ih), 0, batch, state);
}

bool LSTMCell::projects_input() const { return typeid(*this) == typeid(LSTMCell); }

Tensor LSTMCell::project_input(const std::vector<Tensor>& xs) { return affine_steps(weight_ih, xs, bias_ih); }

std::pair<Tensor, State> LSTMCell::step_projected(const Tensor& projected, std::size_t first, const State& state) {
  const std::size_t batch = check_projected(projected, first, 4 * m_hidden, state, 2);
  return advance(projected, first, batch, state);
}

std::pair<Tensor, State> LSTMCell::advance(const Tensor& px, std::size_t first, std::size_t batch, const State& state) {
  const Tensor &h = state[0], &c = state[1];
  const Shape col = batch ? Shape{m_hidden, 1} : Shape{m_hidden};
  auto peep = [&](const Tensor& w, const Tensor& cell) { return reshape(w, col) * cell; };

  // W_ih x + b_ih + W_hh h + b_hh: W_hh h + b_hh added onto the step's columns of the input projection.
  std::vector<Tensor> gates = chunk(affine(weight_hh, h, bias_hh, px, first), 4, 0);
  Tensor i = gates[0], f = gates[1], g = tanh(gates[2]), o = gates[3];
  if (w_ci.defined()) {
    i = i + peep(w_ci, c);
    f = f + peep(w_cf, c);
  }
  i = sigmoid(i);
  f = sigmoid(f);
  Tensor c_next = f * c + i * g;
  if (w_co.defined()) o = o + peep(w_co, c_next);
  Tensor h_next = sigmoid(o) * tanh(c_next);
  return {h_next, {h_next, c_next}};
}

State LSTMCell::initial_state(std::size_t batch) const {
  const Dtype dt = weight_ih.dtype();
  return {initial_tensor(h0, m_hidden, batch, dt), initial_tensor(c0, m_hidden, batch, dt)};
}

std::string LSTMCell::repr() const {
  return "LSTMCell(" + std::to_string(m_input) + " => " + std::to_string(m_hidden) + (w_ci.defined() ? ", peephole" : "") + ")";
}

}  // namespace rwd
