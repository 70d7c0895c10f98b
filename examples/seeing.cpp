// examples/seeing.cpp — seeing autodiff: what the tape holds and what the reverse sweep does with it.
//
//   1. a 3-step tanh RNN, h_t = tanh(W_x x_t + W_h h_{t−1} + b), loss = Σ (h₁ + h₂ + h₃) ⊙ v, recorded
//      on a tape and printed entry by entry (print_tape)
//   2. the backward sweep explained entry by entry: the adjoint each entry received, its rule, what it
//      sent to each input (explain_backward)
//   3. the tape as a graph (to_dot), rendered to PNG with Graphviz's `dot`; tape statistics
//   4. the same sweep stepped through by hand (ReverseSweep + describe_step), watching the adjoint of
//      h₁ — used twice — accumulate from its two consumers
//   5. a custom op, softsign(x) = x / (1 + |x|), with a WRONG backward, caught by gradcheck; the
//      corrected op passes, and a small model using it trains
//   7. the tape as a page to step through in a browser (write_html): the 3-step RNN, each step boxed,
//      with gradcheck's verdict per parameter → tape.html; an LSTM over 20 steps → lstm_tape.html
//
//   bash scripts/example.sh seeing            # installs graphviz and gnuplot, builds, runs
//   bash scripts/example.sh seeing --quick
#include "common/example.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <vector>

using namespace rwd;

namespace {

Tensor column(std::vector<double> v, const char* name, bool param = false) {
  const std::size_t n = v.size();
  Tensor t = Tensor::from_vector(v, {n, 1}, float64).set_name(name);
  if (param) t.set_requires_grad();
  return t;
}

/// The 3-step RNN: two hidden units, one input, float64, small fixed weights so every number printed
/// below can be followed by hand.
struct TinyRNN {
  Tensor W_x = column({0.5, -0.3}, "W_x", true);
  Tensor W_h = Tensor::from_vector(std::vector<double>{0.1, -0.2, 0.4, 0.3}, {2, 2}, float64)
                   .set_name("W_h")
                   .set_requires_grad();
  Tensor b = column({0.05, -0.1}, "b", true);
  Tensor h0 = Tensor::zeros({2, 1}, float64).set_name("h0");
  std::vector<Tensor> xs = {column({1.0}, "x1"), column({-2.0}, "x2"), column({0.5}, "x3")};
  Tensor v = column({1.0, -0.5}, "v");
  std::function<Tensor(const Tensor&)> act = [](const Tensor& z) { return tanh(z); };

  // One statement per product: in `matmul(W_x, x) + matmul(W_h, h)` C++ leaves the order of the two
  // calls unspecified, and the tape records the order of evaluation.
  Tensor step(const Tensor& x, const Tensor& h) const {
    Tensor wx = matmul(W_x, x);
    Tensor wh = matmul(W_h, h);
    return act(wx + wh + b);
  }
  /// h₁, h₂, h₃ (the tape indices of their entries are what the step-through watches).
  std::vector<Tensor> run() const {
    std::vector<Tensor> hs;
    Tensor h = h0;
    for (const Tensor& x : xs) hs.push_back(h = step(x, h));
    return hs;
  }
  static Tensor loss(const std::vector<Tensor>& hs, const Tensor& v) { return sum((hs[0] + hs[1] + hs[2]) * v); }
  std::vector<Tensor> parameters() const { return {W_x, W_h, b}; }
};

// softsign(x) = x / (1 + |x|), a smooth squashing function, as a user-defined primitive: a forward and
// a backward written by hand. Its derivative is 1 / (1 + |x|)². The WRONG version forgets the square —
// the kind of slip that trains "fine", just worse, and that only a gradient check catches.
Tensor softsign(const Tensor& x, bool wrong) {
  return custom_op(
      wrong ? "softsign_wrong" : "softsign", {x},
      [](const std::vector<Tensor>& in) { return in[0] / (1.0 + abs(in[0])); },
      [wrong](BackwardContext& c) {
        const Tensor d = 1.0 + abs(c.input(0));
        c.accumulate(0, wrong ? c.grad_out() / d : c.grad_out() / (d * d));
      },
      wrong ? "dx += dy/(1+|x|)   (wrong)" : "dx += dy/(1+|x|)²");
}

/// Renders a DOT file to PNG with Graphviz's `dot`. False (and says why) if dot is missing or fails.
bool render_dot(const std::string& dot_file, const std::string& png) {
  const pid_t pid = fork();
  if (pid == 0) {
    execlp("dot", "dot", "-Tpng", dot_file.c_str(), "-o", png.c_str(), static_cast<char*>(nullptr));
    _exit(127);  // exec failed: no dot on PATH
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
    std::cout << "Graphviz's dot is not installed (apt-get install graphviz): " << dot_file << " is written, "
              << png << " is not\n";
    return false;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::cout << "dot failed on " << dot_file << "\n";
    return false;
  }
  return true;
}

/// A tensor's values on one line, "[0.8106, -0.7794]".
std::string values(const Tensor& t) {
  std::string s = "[";
  const std::vector<double> v = t.to_vector();
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + ex::num(v[i]);
  return s + "]";
}

void section(const char* title) { std::cout << "\n== " << title << " ==\n"; }

}  // namespace

int run(int argc, char** argv) {
  ex::Args args(argc, argv, "seeing");
  const auto start = std::chrono::steady_clock::now();
  bool ok = true;
  TinyRNN rnn;

  // ---------------------------------------------------------------------------------------------
  section("1. the tape of a 3-step RNN: h_t = tanh(W_x x_t + W_h h_{t-1} + b), loss = sum((h1 + h2 + h3) * v)");
  std::size_t entries = 0;
  {
    Tape tape;  // a fresh tape, current until the end of this scope
    const std::vector<Tensor> hs = rnn.run();
    Tensor loss = TinyRNN::loss(hs, rnn.v);
    entries = tape.size();
    std::cout << print_tape(tape);
    std::cout << entries << " entries: 5 per step (two matmuls, two adds, tanh), then 4 for the loss.\n"
              << "h1, h2, h3 are entries #" << hs[0].tape_index() << ", #" << hs[1].tape_index() << ", #"
              << hs[2].tape_index() << ".\n";

    // -------------------------------------------------------------------------------------------
    section("2. the backward sweep, entry by entry (explain_backward)");
    // The sweep seeds d loss = 1 and visits the entries from last to first. When it reaches entry i,
    // every consumer of i (all later entries) has already added its share to i's adjoint, so dy is
    // complete; the entry's rule turns dy into adjoints for its inputs, which are ADDED (+=) to theirs.
    std::cout << explain_backward(loss);

    // -------------------------------------------------------------------------------------------
    section("3. the tape as a graph (to_dot) and its statistics (tape_stats)");
    // explain_backward retained the tape and kept the adjoints, so the graph shows them: each node its
    // value and adjoint, each edge the adjoint sent back along it.
    const std::string dot_file = args.path("tape.dot"), png = args.path("tape.png");
    // to_dot lays the graph out left to right; a 19-entry tape reads better top to bottom, like the
    // printed tape.
    std::string dot = to_dot(tape);
    if (const auto at = dot.find("rankdir=LR"); at != std::string::npos) dot.replace(at, 10, "rankdir=TB");
    std::ofstream(dot_file) << dot;
    std::cout << "wrote " << dot_file << "\n";
    if (render_dot(dot_file, png)) std::cout << "rendered " << png << " (dot -Tpng)\n";
    std::cout << tape_stats(tape).str();
  }  // the Tape scope ends: its entries and intermediate values are freed

  // ---------------------------------------------------------------------------------------------
  section("4. stepping through the sweep (ReverseSweep + describe_step)");
  // A fresh recording (the gradients zeroed first), this time swept one entry per step() call.
  for (Tensor p : rnn.parameters()) p.zero_grad();
  {
    Tape tape;
    const std::vector<Tensor> hs = rnn.run();
    Tensor loss = TinyRNN::loss(hs, rnn.v);
    const std::int64_t h1 = hs[0].tape_index();
    ReverseSweep sweep(loss);
    for (int k = 0; k < 3; ++k) {  // the first three entries the sweep visits: sum, mul, add
      sweep.step();
      std::cout << describe_step(sweep);
    }
    // h1 (entry #h1) is used twice: by the loss's first add and by step 2's matmul(W_h, h1). Its adjoint
    // is complete only after both have sent theirs — watch it grow.
    std::cout << "… h1 is #" << h1 << "; its pending adjoint: "
              << (sweep.pending_adjoint(h1).defined() ? values(sweep.pending_adjoint(h1)) : "none yet") << "\n";
    while (sweep.step()) {
      const Node& node = sweep.tape()[static_cast<std::size_t>(sweep.current())];
      bool feeds_h1 = false;
      for (const Tensor& in : node.inputs) feeds_h1 = feeds_h1 || in.tape_index() == h1;
      if (feeds_h1) {
        std::cout << describe_step(sweep) << "    pending adjoint of h1 (#" << h1 << ") now: "
                  << values(sweep.pending_adjoint(h1)) << "\n";
      }
      if (sweep.current() == h1) {
        std::cout << "the sweep reaches h1 itself with the sum of both contributions:\n" << describe_step(sweep);
        break;
      }
    }
    sweep.run();  // the rest, to the leaves
    std::cout << "… and on to the leaves: dloss/dW_x = " << values(rnn.W_x.grad()) << ", as explain_backward found\n";
  }

  // ---------------------------------------------------------------------------------------------
  section("5. a custom op with a wrong backward, caught by gradcheck");
  // The same RNN with softsign in place of tanh. gradcheck compares the tape's gradients of the loss
  // with respect to W_x, W_h, b against central finite differences, in float64.
  auto loss_with = [&](bool wrong) {
    return [&rnn, wrong](const std::vector<Tensor>&) {
      TinyRNN r = rnn;  // shares the parameter handles
      r.act = [wrong](const Tensor& z) { return softsign(z, wrong); };
      return TinyRNN::loss(r.run(), r.v);
    };
  };
  {
    Tape tape;  // what the custom op looks like on the tape: one entry, named as given
    TinyRNN r = rnn;
    r.act = [](const Tensor& z) { return softsign(z, true); };
    r.step(r.xs[0], r.h0);
    std::cout << print_tape(tape);
  }
  const GradcheckReport wrong_report = gradcheck(loss_with(true), rnn.parameters());
  std::cout << "softsign with dx += dy/(1+|x|):\n" << wrong_report;
  const bool caught = !wrong_report.ok();
  if (!caught) {
    std::cout << "FAIL: gradcheck did not catch the wrong backward\n";
    ok = false;
  }
  const GradcheckReport right_report = gradcheck(loss_with(false), rnn.parameters());
  std::cout << "softsign with dx += dy/(1+|x|)²:\n" << right_report;
  if (!right_report) {
    std::cout << "FAIL: the corrected op does not pass\n";
    ok = false;
  }

  // ---------------------------------------------------------------------------------------------
  section("6. the checked op at work: a softsign RNN learns the mean of its three inputs");
  // 3-step sequences of one feature, uniform in [−1, 1); the target is their mean, read out from h3.
  // Batches of 32 sequences in Flux's layout: each step is (1, 32).
  Generator gen(args.seed);
  const std::size_t batch = 32, n_batches = args.quick ? 2 : 8, epochs = args.quick ? 2 : 40;
  std::vector<std::vector<Tensor>> inputs(n_batches);
  std::vector<Tensor> targets;
  for (auto& xs : inputs) {
    std::vector<double> mean(batch, 0.0);
    for (int t = 0; t < 3; ++t) {
      xs.push_back(Tensor::uniform({1, batch}, -1, 1, gen, float64));
      const std::vector<double> v = xs.back().to_vector();
      for (std::size_t j = 0; j < batch; ++j) mean[j] += v[j] / 3;
    }
    targets.push_back(Tensor::from_vector(mean, {1, batch}, float64));
  }
  TinyRNN model = rnn;  // (the same parameter handles; they start from the fixed values above)
  model.act = [](const Tensor& z) { return softsign(z, false); };
  Tensor W_y = Tensor::from_vector(std::vector<double>{0.5, 0.5}, {1, 2}, float64).set_name("W_y").set_requires_grad();
  std::vector<Tensor> params = model.parameters();
  params.push_back(W_y);
  Adam opt(params, {.lr = 0.02});
  History history = fit(opt, n_batches,
                        [&](std::size_t, std::size_t k) {
                          model.xs = inputs[k];
                          model.h0 = Tensor::zeros({2, batch}, float64);
                          return mse_loss(matmul(W_y, model.run().back()), targets[k]);
                        },
                        {.epochs = epochs, .out = &std::cout});
  history.write_csv(args.path("history.csv"));
  ex::plot_history(args.path("loss.png"), "seeing: a 3-step softsign RNN learning the mean of its inputs (MSE)",
                   history);

  // ---------------------------------------------------------------------------------------------
  section("7. the tape as a page to step through (write_html)");
  // The same 3-step RNN at its starting weights (section 6 trained the shared ones), recorded with
  // each step marked so the page boxes it (t=0, 1, 2); a recurrent layer marks its steps itself.
  // Open tape.html in a browser: → runs the forward pass, then the reverse sweep, one entry at a time.
  std::size_t page_bytes = 0;
  {
    TinyRNN fresh;
    auto marked = [&fresh](const std::vector<Tensor>&) {
      Tape& tape = Tape::current();
      std::vector<Tensor> hs;
      Tensor h = fresh.h0;
      for (std::size_t t = 0; t < fresh.xs.size(); ++t) {
        tape.mark_step(static_cast<std::int64_t>(t));
        hs.push_back(h = fresh.step(fresh.xs[t], h));
      }
      tape.mark_step(-1);
      return TinyRNN::loss(hs, fresh.v);
    };
    const GradcheckReport check = gradcheck(marked, fresh.parameters());
    Tape tape;
    tape.keep_values();  // every value on the page (training drops those no backward reads)
    Tensor loss = marked({});
    const std::string page = args.path("tape.html");
    write_html(page, loss, {.title = "seeing: a 3-step tanh RNN", .gradcheck = &check});
    page_bytes = std::filesystem::file_size(page);
    std::cout << "wrote " << page << " (" << page_bytes << " bytes, " << tape.size() << " entries)\n";
  }
  {
    Generator lstm_gen(args.seed);
    Recurrent lstm = LSTM(1, 3, {.dtype = float64}, lstm_gen);
    Tape tape;
    tape.keep_values();
    Tensor loss = sum(lstm(Tensor::uniform({20, 1, 1}, -1, 1, lstm_gen, float64)));
    const std::string page = args.path("lstm_tape.html");
    write_html(page, loss, {.title = "seeing: an LSTM over 20 steps"});
    std::cout << "wrote " << page << " (" << std::filesystem::file_size(page) << " bytes, " << tape.size()
              << " entries)\n";
  }

  std::cout << "wall time " << ex::num(ex::seconds_since(start), "%.2f") << " s\n";
  ex::result({{"example", "seeing"},
              {"entries", std::to_string(entries)},
              {"wrong_op_caught", caught ? "yes" : "no"},
              {"fixed_op_passes", right_report ? "yes" : "no"},
              {"final_loss", ex::num(history.final_loss())},
              {"page_bytes", std::to_string(page_bytes)}});
  return ok ? 0 : 1;
}

int main(int argc, char** argv) { return ex::guard("seeing", [&] { return run(argc, argv); }); }
