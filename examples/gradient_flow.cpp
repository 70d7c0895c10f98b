// examples/gradient_flow.cpp — how far back does the gradient reach? ‖∂L/∂h_t‖ for every step t of
// a 50-step recurrence, the loss on the last output only: a tanh RNN against an LSTM (its hidden
// state h_t and its cell state c_t), with the forget gate's bias at 0 and at 1. Printed as a table
// and plotted (log scale): vanishing gradients, and the LSTM's "constant error carousel" seen.
//
// gradient_flow(loss, steps) (autograd/inspect.hpp) returns the norms of the adjoints the sweep
// leaves at each step's value — every path counted, the later steps' included.
#include <rewind.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "common/example.hpp"

using namespace rwd;

namespace {

constexpr std::size_t T = 50, batch = 4, hidden = 16;

struct Flow {
  std::string name;
  std::vector<double> norms;  // ‖∂L/∂·‖ at t = 0 … T − 1
};

// Runs `cell` by hand over `seq` from its initial state; the loss is the sum of the last output.
// Returns the flow to each step's output h_t and, for an LSTM, to its cell state c_t.
std::vector<std::vector<double>> flow_through(Cell& cell, const Tensor& seq) {
  Tape tape;
  State s = cell.initial_state(batch);
  std::vector<Tensor> hs, cs;
  for (const Tensor& x : split_steps(seq)) {
    auto [y, next] = cell.step(x, s);
    s = next;
    hs.push_back(y);
    if (s.size() > 1) cs.push_back(s[1]);  // an LSTM's cell state
  }
  const Tensor loss = sum(hs.back());
  std::vector<std::vector<double>> out{gradient_flow(loss, hs)};
  if (!cs.empty()) out.push_back(gradient_flow(loss, cs));
  return out;
}

std::string sci(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, v >= 0.01 || v == 0 ? "%.2g" : "%.1e", v);
  return buf;
}

}  // namespace

int run(int argc, char** argv) {
  ex::Args args(argc, argv, "gradient_flow");
  Generator gen(args.seed + 1);  // seed 0 → generator 1: the tutorial's figures
  const Tensor seq = Tensor::randn({T, 1, batch}, gen, float64);  // 50 steps of noise, one feature

  std::vector<Flow> flows;
  RNNCell rnn(1, hidden, "tanh", {.dtype = float64}, gen);
  flows.push_back({"tanh RNN, h_t", flow_through(rnn, seq)[0]});
  for (double forget_bias : {0.0, 1.0}) {
    LSTMCell lstm(1, hidden, {.forget_bias = forget_bias, .dtype = float64}, gen);
    const auto f = flow_through(lstm, seq);
    const std::string which = forget_bias == 0 ? "LSTM" : "LSTM, forget_bias = 1";
    flows.push_back({which + ", h_t", f[0]});
    flows.push_back({which + ", c_t", f[1]});
  }

  std::cout << "‖∂L/∂·‖ at step t, the loss on step " << T - 1 << "'s output (" << T << " steps, batch " << batch << ", "
            << hidden << " units, float64):\n\n| | ";
  const std::vector<std::size_t> shown{49, 40, 30, 20, 10, 0};
  for (std::size_t t : shown) std::cout << "t=" << t << " | ";
  std::cout << "\n| --- |";
  for (std::size_t i = 0; i < shown.size(); ++i) std::cout << " ---: |";
  std::cout << "\n";
  for (const Flow& f : flows) {
    std::cout << "| " << f.name << " | ";
    for (std::size_t t : shown) std::cout << sci(f.norms[t]) << " | ";
    std::cout << "\n";
  }
  // How much reaches the first step, per 10 steps back: the geometric rate of decay.
  auto per10 = [](const std::vector<double>& n) { return std::pow(n[0] / n[T - 1], 10.0 / double(T - 1)); };
  std::cout << "\nfactor per 10 steps back: ";
  for (std::size_t i = 0; i < flows.size(); ++i) std::cout << (i ? ", " : "") << flows[i].name << " " << sci(per10(flows[i].norms));
  std::cout << "\n";

  std::vector<ex::Series> series;
  std::ofstream csv(args.path("gradient_flow.csv"));
  csv << "t";
  for (const Flow& f : flows) {
    series.push_back({f.name, f.norms});
    csv << ",\"" << f.name << "\"";
  }
  csv << "\n";
  for (std::size_t t = 0; t < T; ++t) {
    csv << t;
    for (const Flow& f : flows) csv << "," << f.norms[t];
    csv << "\n";
  }
  ex::plot(args.path("gradient_flow.png"), "How far back the gradient reaches: ‖∂L/∂h_t‖, the loss on the last step",
           "time step t", "norm of the gradient (log scale)", series, /*log_y=*/true);

  const double rnn_first = flows[0].norms[0], lstm1_first = flows[3].norms[0];
  ex::result({{"rnn_h0", sci(rnn_first)}, {"lstm_h0", sci(flows[1].norms[0])}, {"lstm_fb1_h0", sci(lstm1_first)},
              {"lstm_fb1_c0", sci(flows[4].norms[0])}});
  // What the tutorial says: with the forget gate open the LSTM carries the gradient much further.
  return lstm1_first > 100 * rnn_first ? 0 : 1;
}

int main(int argc, char** argv) { return ex::guard("gradient_flow", [&] { return run(argc, argv); }); }
