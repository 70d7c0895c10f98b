#include "rnn_cell.hpp"

#include <cmath>
#include <typeinfo>

#include "../autograd/ops.hpp"
#include "init.hpp"

namespace rwd {

RNNCell::RNNCell(std::size_t input, std::size_t hidden, Activation activation, CellOptions options, Generator& gen)
    : m_input(input), m_hidden(hidden), m_activation(std::move(activation)) {
  check_size("RNNCell", "input", input);
  check_size("RNNCell", "hidden", hidden);
  if (m_activation.name != "tanh" && m_activation.name != "relu")
    throw ValueError("RNNCell: activation must be tanh or relu, got " + m_activation.name);
  const Dtype dt = options.dtype;
  weight_ih = register_parameter("weight_ih", init::uniform_fan_in({hidden, input}, hidden, gen, dt));
  weight_hh = register_parameter("weight_hh", init::uniform_fan_in({hidden, hidden}, hidden, gen, dt));
  bias_ih = register_parameter("bias_ih", init::uniform_fan_in({hidden}, hidden, gen, dt));
  bias_hh = register_parameter("bias_hh", init::uniform_fan_in({hidden}, hidden, gen, dt));
  if (options.learn_initial_state) h0 = register_parameter("h0", Tensor::zeros({hidden}, dt));
}

std::pair<Tensor, State> RNNCell::step(const Tensor& x, const State& state) {
  check_step(x, state, 1);
  return advance(affine(weight_ih, x, bias_ih), 0, state);
}

bool RNNCell::projects_input() const { return typeid(*this) == typeid(RNNCell); }

Tensor RNNCell::project_input(const std::vector<Tensor>& xs) { return affine_steps(weight_ih, xs, bias_ih); }

std::pair<Tensor, State> RNNCell::step_projected(const Tensor& projected, std::size_t first, const State& state) {
  check_projected(projected, first, m_hidden, state, 1);
  return advance(projected, first, state);
}

std::pair<Tensor, State> RNNCell::advance(const Tensor& px, std::size_t first, const State& state) {
  // W_ih x + b_ih + W_hh h + b_hh: W_hh h + b_hh added onto the step's columns of the input projection.
  Tensor h = m_activation(affine(weight_hh, state[0], bias_hh, px, first));
  return {h, {h}};
}

State RNNCell::initial_state(std::size_t batch) const {
  return {initial_tensor(h0, m_hidden, batch, weight_ih.dtype())};
}

std::string RNNCell::repr() const {
  return "RNNCell(" + std::to_string(m_input) + " => " + std::to_string(m_hidden) + ", " + m_activation.name + ")";
}

}  // namespace rwd
