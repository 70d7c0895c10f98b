// examples/adder.cpp — an RNN that learns to add binary numbers, and the tape of one addition.
//
// The seeds cite an RNN that adds two N-bit numbers into an (N+1)-bit sum. Read least significant bit
// first, addition is a recurrence: at step t the sum bit is s_t = a_t ⊕ b_t ⊕ c_t and the carry
// passed on is c_{t+1} = [a_t + b_t + c_t ≥ 2]. So a recurrent net that reads (a_t, b_t) at step t and
// writes s_t needs to keep exactly one bit of memory, the carry, in its hidden state; the last step
// reads (0, 0) and writes the final carry, bit N of the sum.
//
// The model. A tanh RNN with 8 hidden units, h_t = tanh(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh), reads
// x_t = (a_t, b_t), and a Dense(8 => 1) applied at every step (TimeDistributed) gives the logit of s_t;
// binary cross-entropy on the logits, Adam. Three tanh units would do in principle (the sum bit is
// the parity of a + b + c, the carry a threshold of it, both functions of the three thresholds
// a + b + c ≥ 1, ≥ 2, ≥ 3); eight make it easy to find.
//
// Trained on random 8-bit pairs only (9 steps), then tested on random 8-, 32- and 64-bit pairs (33 and
// 65 steps): a model that has learnt the carry rule — not the 8-bit table — adds numbers of any length.
// Accuracy is reported per bit and per whole sum (every one of the N+1 bits right). Numbers are bit
// vectors throughout, since a 64-bit pair's sum does not fit a uint64.
//
// Then one 2-bit addition, 3 + 1 = 4 (11 + 01 = 100, two carries), is run on a fresh tape and the tape
// printed (print_tape: the entries of each time step labelled t=0, t=1, t=2), with the hidden state
// at each step and the unit that carries the carry.
//
//   adder [--quick] [--out DIR] [--seed N]
//   RESULT example=adder bit_acc_8=… num_acc_8=… bit_acc_32=… num_acc_32=… bit_acc_64=… num_acc_64=…
#include "common/example.hpp"

#include <algorithm>
#include <iomanip>
#include <map>

using namespace rwd;

namespace {

constexpr std::size_t hidden = 8, train_bits = 8, batch_size = 64;

/// A batch of additions: the inputs (N+1, 2, batch), the target sum bits (N+1, 1, batch), and the
/// carry into each step (N+1, batch) for the explanation below. Bits least significant first.
struct Additions {
  Tensor x, y;
  std::vector<std::vector<int>> carry_in;  // [t][j]
  std::size_t steps = 0, count = 0;
};

/// `count` random pairs of `bits`-bit numbers (or the given pairs, as bit vectors, when not empty).
Additions make_additions(std::size_t bits, std::size_t count, Generator& gen,
                         const std::vector<std::pair<std::vector<int>, std::vector<int>>>& given = {}) {
  Additions d;
  d.steps = bits + 1;
  d.count = given.empty() ? count : given.size();
  const std::size_t T = d.steps, B = d.count;
  std::vector<double> x(T * 2 * B, 0.0), y(T * B, 0.0);
  d.carry_in.assign(T, std::vector<int>(B, 0));
  for (std::size_t j = 0; j < B; ++j) {
    int carry = 0;
    for (std::size_t t = 0; t < T; ++t) {
      int a = 0, b = 0;
      if (t < bits) {
        a = given.empty() ? static_cast<int>(gen.integer(2)) : given[j].first[t];
        b = given.empty() ? static_cast<int>(gen.integer(2)) : given[j].second[t];
      }
      d.carry_in[t][j] = carry;
      const int s = a + b + carry;
      x[(t * 2 + 0) * B + j] = a;
      x[(t * 2 + 1) * B + j] = b;
      y[t * B + j] = s & 1;
      carry = s >> 1;
    }
  }
  d.x = Tensor::from_vector(x, {T, 2, B});
  d.y = Tensor::from_vector(y, {T, 1, B});
  return d;
}

struct Adder {
  Recurrent rnn;
  TimeDistributed head;

  /// The logits of the sum bits, (steps, 1, batch).
  Tensor operator()(const Tensor& x) { return head(rnn(x)); }
  std::vector<Tensor> parameters() const {
    std::vector<Tensor> p = rnn.parameters();
    for (const Tensor& t : head.parameters()) p.push_back(t);
    return p;
  }
};

struct Accuracy {
  double per_bit = 0, per_number = 0;
};

/// Per-bit and per-sum accuracy of the model on `count` random `bits`-bit pairs.
Accuracy evaluate(Adder& m, std::size_t bits, std::size_t count, Generator& gen) {
  NoGradGuard no_grad;
  const Additions d = make_additions(bits, count, gen);
  const std::vector<double> logit = m(d.x).to_vector(), y = d.y.to_vector();
  std::size_t right_bits = 0, right_numbers = 0;
  for (std::size_t j = 0; j < d.count; ++j) {
    bool all = true;
    for (std::size_t t = 0; t < d.steps; ++t) {
      const bool ok = (logit[t * d.count + j] > 0) == (y[t * d.count + j] > 0.5);
      right_bits += ok;
      all = all && ok;
    }
    right_numbers += all;
  }
  return {static_cast<double>(right_bits) / static_cast<double>(d.steps * d.count),
          static_cast<double>(right_numbers) / static_cast<double>(d.count)};
}

/// Bits as a string, most significant first (how numbers are written).
std::string msb_first(const std::vector<int>& lsb_first) {
  std::string s;
  for (auto it = lsb_first.rbegin(); it != lsb_first.rend(); ++it) s += static_cast<char>('0' + *it);
  return s;
}

}  // namespace

int run(int argc, char** argv) {
  ex::Args args(argc, argv, "adder");
  const auto start = std::chrono::steady_clock::now();
  Generator gen(args.seed);

  Adder m{RNN(2, hidden, "tanh", CellOptions{}, RecurrentOptions{}, gen),
          TimeDistributed(Dense(hidden, 1, Activation(), true, Dtype::f32, gen))};
  const std::size_t epochs = args.quick ? 2 : 20, batches = args.quick ? 25 : 100;
  Adam opt(m.parameters(), {.lr = 0.01});
  std::cout << m.rnn.repr() << " → " << m.head.repr() << ", " << opt.str() << "\n"
            << "training on random " << train_bits << "-bit pairs: " << epochs << " epochs of " << batches
            << " batches of " << batch_size << "\n";

  Generator data_gen(args.seed + 1);
  std::vector<double> bit_acc_curve;
  const History history = fit(
      opt, batches,
      [&](std::size_t, std::size_t) {
        const Additions d = make_additions(train_bits, batch_size, data_gen);
        return binary_cross_entropy_with_logits(m(d.x), d.y);
      },
      {.epochs = epochs,
       .on_epoch_end =
           [&](const EpochRecord& e) {
             Generator check(12345);
             const Accuracy a = evaluate(m, train_bits, 256, check);
             bit_acc_curve.push_back(a.per_bit);
             std::cout << "  epoch " << e.epoch << ": loss " << ex::num(e.loss, "%.4f") << ", 8-bit accuracy per bit "
                       << ex::num(a.per_bit, "%.4f") << ", per sum " << ex::num(a.per_number, "%.4f") << "\n";
           },
       .out = nullptr});
  history.write_csv(args.path("history.csv"));
  ex::plot_history(args.path("loss.png"), "adder: binary cross-entropy per epoch (8-bit pairs)", history);

  // Tested on numbers it has never seen the length of: the carry rule, if learnt, works at any length.
  const std::size_t n_test = args.quick ? 200 : 5000;
  Generator test_gen(args.seed + 2);
  std::map<std::size_t, Accuracy> acc;
  std::cout << "\ntest on " << n_test << " random pairs each (sum bits = bits + 1):\n"
            << "  bits | accuracy per bit | whole sums right\n";
  for (std::size_t bits : {std::size_t{8}, std::size_t{32}, std::size_t{64}}) {
    acc[bits] = evaluate(m, bits, n_test, test_gen);
    std::cout << "  " << std::setw(4) << bits << " | " << std::setw(16) << ex::num(acc[bits].per_bit, "%.4f") << " | "
              << std::setw(16) << ex::num(acc[bits].per_number, "%.4f") << "\n";
  }
  // A 64-bit sum right in every bit: an example written out (bit vectors; it overflows uint64).
  {
    NoGradGuard no_grad;
    Generator g(args.seed + 3);
    const Additions d = make_additions(64, 1, g);
    const std::vector<double> x = d.x.to_vector(), logit = m(d.x).to_vector();
    std::vector<int> a, b, s, pred;
    for (std::size_t t = 0; t < d.steps; ++t) {
      if (t < 64) a.push_back(static_cast<int>(x[t * 2]) ), b.push_back(static_cast<int>(x[t * 2 + 1]));
      s.push_back(static_cast<int>(d.y.to_vector()[t]));
      pred.push_back(logit[t] > 0);
    }
    std::cout << "  e.g.  " << std::setw(66) << msb_first(a) << "\n      + " << std::setw(66) << msb_first(b)
              << "\n      = " << std::setw(66) << msb_first(s) << " (true)\n        " << std::setw(66) << msb_first(pred)
              << (pred == s ? " (the model's: right)\n" : " (the model's: WRONG)\n");
  }

  // ---- the tape of one addition: 3 + 1 = 4, i.e. 11 + 01 = 100, least significant bit first ----
  std::cout << "\n== the tape of one addition: 3 + 1 = 4 (binary 11 + 01 = 100) ==\n"
            << "Fed least significant bit first: step 0 reads (1, 1) and writes 0, carry 1; step 1 reads (1, 0)\n"
            << "plus the carry and writes 0, carry 1; step 2 reads (0, 0) and writes the carry, 1.\n\n";
  Generator unused(0);
  const Additions one = make_additions(2, 1, unused, {{{1, 1}, {1, 0}}});
  std::vector<Tensor> hs;
  {
    Tape tape;
    std::vector<Tensor> steps;
    for (std::size_t t = 0; t < one.steps; ++t) steps.push_back(reshape(slice(one.x, 0, t, t + 1), {2, 1}));
    const std::size_t before = tape.size();
    const RecurrentRun run = m.rnn.run(steps);
    const std::size_t after_rnn = tape.size();
    Tensor logits = m.head(stack(run.outputs, 0));
    Tensor loss = binary_cross_entropy_with_logits(logits, one.y);
    std::cout << print_tape(tape);
    for (const Tensor& h : run.outputs) hs.push_back(h.detach());  // kept past the tape
    std::cout << "\nHow to read it. The input's three steps (one (2, 1) column each) are constants: they need\n"
              << "no gradient, so cutting them out recorded nothing. Entries #" << before << "-#" << after_rnn - 1
              << " are the RNN, labelled by step t. Each step is\n"
              << "the cell's equation h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh) as two affine entries (one\n"
              << "primitive, W x + b [+ what was already summed]) and a tanh. The second affine of step t reads the\n"
              << "tanh of step t-1 (at t=0 a constant: the zero initial state): that one edge per step is the only\n"
              << "path from one step to the next, so the carry has to live in h. Then the three h_t are stacked,\n"
              << "the Dense head runs once over all steps (TimeDistributed: permute and reshape to (8, 3), one\n"
              << "affine, reshape back), and the rest is binary cross-entropy on the logits, written with\n"
              << "primitives (softplus(x) - x y as clamp, exp, log1p; the mean). A backward sweeps this list from\n"
              << "the last entry to #0, so the gradient that reaches W_hh through step 0 has passed back through\n"
              << "the tanh of steps 2 and 1: backpropagation through time needs no code of its own.\n";
    const std::vector<double> p = logits.to_vector();
    std::cout << "\npredicted sum bits (least significant first): ";
    for (double v : p) std::cout << (v > 0) << " ";
    std::cout << "(logits";
    for (double v : p) std::cout << " " << ex::num(v, "%.2f");
    std::cout << "), loss " << ex::num(loss.item(), "%.4f") << "\n";
  }

  // Which hidden unit carries the carry? Over many test additions, the correlation of each unit's value
  // h_t with the carry into step t+1 (what h_t must remember).
  {
    NoGradGuard no_grad;
    Generator g(args.seed + 4);
    const Additions d = make_additions(32, 500, g);
    const RecurrentRun run = m.rnn.run([&] {
      std::vector<Tensor> steps;
      for (std::size_t t = 0; t < d.steps; ++t) steps.push_back(reshape(slice(d.x, 0, t, t + 1), {2, d.count}));
      return steps;
    }());
    std::size_t best = 0;
    std::vector<double> corr(hidden);
    for (std::size_t u = 0; u < hidden; ++u) {
      double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0, n = 0;
      for (std::size_t t = 0; t + 1 < d.steps; ++t) {
        const std::vector<double> h = run.outputs[t].to_vector();
        for (std::size_t j = 0; j < d.count; ++j) {
          const double v = h[u * d.count + j], c = d.carry_in[t + 1][j];
          sx += v, sy += c, sxx += v * v, syy += c * c, sxy += v * c, n += 1;
        }
      }
      corr[u] = (sxy - sx * sy / n) / std::sqrt((sxx - sx * sx / n) * (syy - sy * sy / n) + 1e-30);
      if (std::abs(corr[u]) > std::abs(corr[best])) best = u;
    }
    std::cout << "\ncorrelation of each hidden unit with the carry it must pass on (500 32-bit additions):\n ";
    for (std::size_t u = 0; u < hidden; ++u) std::cout << " h[" << u << "] " << ex::num(corr[u], "%+.2f");
    std::cout << "\nunit " << best << " tracks the carry most closely. Its value in the addition above, step by step:";
    for (std::size_t t = 0; t < hs.size(); ++t)
      std::cout << " t=" << t << ": " << ex::num(hs[t].to_vector()[best], "%+.3f");
    std::cout << "\n(the carry out of steps 0, 1, 2 is 1, 1, 0)\n";
  }

  std::cout << "wall time " << ex::num(ex::seconds_since(start), "%.1f") << " s\n";
  ex::result({{"example", "adder"},
              {"bit_acc_8", ex::num(acc[8].per_bit, "%.4f")},
              {"num_acc_8", ex::num(acc[8].per_number, "%.4f")},
              {"bit_acc_32", ex::num(acc[32].per_bit, "%.4f")},
              {"num_acc_32", ex::num(acc[32].per_number, "%.4f")},
              {"bit_acc_64", ex::num(acc[64].per_bit, "%.4f")},
              {"num_acc_64", ex::num(acc[64].per_number, "%.4f")}});
  return 0;
}

int main(int argc, char** argv) { return ex::guard("adder", [&] { return run(argc, argv); }); }
