#include "gru_cell.hpp"

#include "../autograd/ops.hpp"
#include "init.hpp"

namespace rwd {

GRUCell::GRUCell(std::size_t input, std::size_t hidden, GRUOptions options, Generator& gen)
    : m_input(input), m_hidden(hidden), m_reset_after(options.reset_after) {
  check_size("GRUCell", "input", input);
  check_size("GRUCell", "hidden", hidden);
  const Dtype dt = options.dtype;
  const std::size_t h = hidden;
  weight_ih = register_parameter("weight_ih", init::uniform_fan_in({3 * h, input}, h, gen, dt));
  weight_hh = register_parameter("weight_hh", init::uniform_fan_in({3 * h, h}, h, gen, dt));
  bias_ih = register_parameter("bias_ih", init::uniform_fan_in({3 * h}, h, gen, dt));
  bias_hh = register_parameter("bias_hh", init::uniform_fan_in({3 * h}, h, gen, dt));
  if (options.learn_initial_state) h0 = register_parameter("h0", Tensor::zeros({h}, dt));
}

std::pair<Tensor, State> GRUCell::step(const Tensor& x, const State& state) { return advance(x, state, Tensor()); }

std::pair<Tensor, State> GRUCell::step_dropped(const Tensor& x, const State& state, const Tensor& h_mask) {
  return advance(x, state, h_mask);
}

std::pair<Tensor, State> GRUCell::advance(const Tensor& x, const State& state, const Tensor& h_mask) {
  const std::size_t batch = check_step(x, state, 1);
  const Tensor& h = state[0];
  // h where it enters the recurrent products (masked_h refuses a mask not of h's shape)
  const Tensor h_in = h_mask.defined() ? masked_h(state, h_mask, batch)[0] : h;
  const std::size_t H = m_hidden;
  std::vector<Tensor> gx = chunk(affine(weight_ih, x, bias_ih), 3, 0);
  Tensor r, z, n;
  if (m_reset_after) {
    std::vector<Tensor> gh = chunk(affine(weight_hh, h_in, bias_hh), 3, 0);
    r = sigmoid(gx[0] + gh[0]);
    z = sigmoid(gx[1] + gh[1]);
    n = tanh(gx[2] + r * gh[2]);
  } else {
    std::vector<Tensor> rz = chunk(affine(slice(weight_hh, 0, 0, 2 * H), h_in, slice(bias_hh, 0, 0, 2 * H)), 2, 0);
    r = sigmoid(gx[0] + rz[0]);
    z = sigmoid(gx[1] + rz[1]);
    n = tanh(gx[2] + affine(slice(weight_hh, 0, 2 * H, 3 * H), r * h_in, slice(bias_hh, 0, 2 * H, 3 * H)));
  }
  Tensor h_next = n + z * (h - n);  // (1 − z) ⊙ n + z ⊙ h, in three ops instead of four
  return {h_next, {h_next}};
}

State GRUCell::initial_state(std::size_t batch) const { return {initial_tensor(h0, m_hidden, batch, weight_ih.dtype())}; }

std::string GRUCell::repr() const {
  return "GRUCell(" + std::to_string(m_input) + " => " + std::to_string(m_hidden) + (m_reset_after ? "" : ", reset_before") + ")";
}

}  // namespace rwd
