// The tape as a teaching tool: print_tape, explain_backward / explain_tape, describe_step, to_dot,
// tape_stats — golden text for a two-step tanh RNN and for fan-out (y = x⊙x + x).
//
// The numbers in the golden strings come from an independent reference, plain Python (no rewind):
//
//   import math
//   def mm(A,B): return [[sum(A[i][k]*B[k][j] for k in range(len(B))) for j in range(len(B[0]))]
//                        for i in range(len(A))]
//   def add(A,B): return [[a+b for a,b in zip(r,s)] for r,s in zip(A,B)]
//   def mul(A,B): return [[a*b for a,b in zip(r,s)] for r,s in zip(A,B)]
//   def T(A): return [list(r) for r in zip(*A)]
//   def th(A): return [[math.tanh(x) for x in r] for r in A]
//   Wx=[[0.5],[-0.3]]; Wh=[[0.1,-0.2],[0.4,0.3]]; b=[[0.05],[-0.1]]; h0=[[0.0],[0.0]]
//   x1=[[1.0]]; x2=[[-2.0]]; v=[[1.0],[-0.5]]
//   t4=th(add(add(mm(Wx,x1),mm(Wh,h0)),b)); t9=th(add(add(mm(Wx,x2),mm(Wh,t4)),b))
//   loss=sum(mul(t9,v)[i][0] for i in range(2))
//   d9=v; d8=[[d9[i][0]*(1-t9[i][0]**2)] for i in range(2)]            # tanh rule
//   dWh_6=mm(d8,T(t4)); d4=mm(T(Wh),d8); dWx_5=mm(d8,T(x2))
//   d3=[[d4[i][0]*(1-t4[i][0]**2)] for i in range(2)]
//   dWx=add(dWx_5,mm(d3,T(x1))); dWh=dWh_6; db=add(d8,d3)               # h0 = 0 sends W_h zeros
//   print each with "%.4g"
//
// giving  #4 = [0.5005, -0.3799]  #9 = [-0.6772, 0.5272]  loss = -0.9408  d8 = [0.5414, -0.361]
//         d4 = [-0.09028, -0.2166]  d3 = [-0.06766, -0.1853]  dWx = [-1.15, 0.5368]
//         dWh = [0.271, -0.2057, -0.1807, 0.1372]  db = [0.4737, -0.5464].
#include <doctest/doctest.h>

#include <rewind.hpp>

#include "support.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

using namespace rwd;

namespace {

// h_t = tanh(W_x·x_t + W_h·h_{t−1} + b), two steps from h0 = 0; loss = Σ h_2 ⊙ v.
struct Rnn {
  Tensor W_x = Tensor::from_vector(std::vector<double>{0.5, -0.3}, {2, 1}, float64).set_name("W_x").set_requires_grad();
  Tensor W_h = Tensor::from_vector(std::vector<double>{0.1, -0.2, 0.4, 0.3}, {2, 2}, float64)
                   .set_name("W_h")
                   .set_requires_grad();
  Tensor b = Tensor::from_vector(std::vector<double>{0.05, -0.1}, {2, 1}, float64).set_name("b").set_requires_grad();
  Tensor h0 = Tensor::zeros({2, 1}, float64).set_name("h0");
  Tensor x1 = Tensor::from_vector(std::vector<double>{1.0}, {1, 1}, float64).set_name("x1");
  Tensor x2 = Tensor::from_vector(std::vector<double>{-2.0}, {1, 1}, float64).set_name("x2");
  Tensor v = Tensor::from_vector(std::vector<double>{1.0, -0.5}, {2, 1}, float64).set_name("v");

  // One statement per product: in `matmul(W_x, x) + matmul(W_h, h)` C++ leaves the order of the two
  // calls unspecified (GCC records the right one first), and the tape is the order of evaluation.
  Tensor step(const Tensor& x, const Tensor& h) const {
    Tensor wx = matmul(W_x, x);
    Tensor wh = matmul(W_h, h);
    return tanh(wx + wh + b);
  }
  Tensor loss() const { return sum(step(x2, step(x1, h0)) * v); }
};

void check_close(const Tensor& t, const std::vector<double>& want) {
  const std::vector<double> got = t.to_vector();
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-3));
}

std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + what.size())) ++n;
  return n;
}

}  // namespace

TEST_CASE("inspect: print_tape of a two-step tanh RNN") {
  Tape tape;
  Rnn rnn;
  Tensor loss = rnn.loss();
  CHECK(print_tape(tape) ==
        "#    op      inputs   shape   value\n"
        "#0   matmul  W_x, x1  (2, 1)  [0.5, -0.3]\n"
        "#1   matmul  W_h, h0  (2, 1)  [0, 0]\n"
        "#2   add     #0, #1   (2, 1)  [0.5, -0.3]\n"
        "#3   add     #2, b    (2, 1)  [0.55, -0.4]\n"
        "#4   tanh    #3       (2, 1)  [0.5005, -0.3799]\n"
        "#5   matmul  W_x, x2  (2, 1)  [-1, 0.6]\n"
        "#6   matmul  W_h, #4  (2, 1)  [0.126, 0.08622]\n"
        "#7   add     #5, #6   (2, 1)  [-0.874, 0.6862]\n"
        "#8   add     #7, b    (2, 1)  [-0.824, 0.5862]\n"
        "#9   tanh    #8       (2, 1)  [-0.6772, 0.5272]\n"
        "#10  mul     #9, v    (2, 1)  [-0.6772, -0.2636]\n"
        "#11  sum     #10      ()      -0.9408\n");
  // The default argument is the current tape, which the scope above made `tape`.
  CHECK(print_tape() == print_tape(tape));
}

TEST_CASE("inspect: print_tape names unnamed leaves and constants, summarizes large values") {
  Tape tape;
  CHECK(print_tape(tape) == "(empty tape)\n");
  Tensor x = Tensor::from_vector(std::vector<double>{1, 2}, {2}, float64).set_requires_grad();
  Tensor big = Tensor::from_vector(std::vector<double>{1, 2, 3, 4, 5, -6}, {2, 3}, float64);
  Tensor y = x * 2.0 + x;
  Tensor z = sum(big * sum(y));  // sum(y) = 9: mean 9·9/6 = 13.5, min −54, max 45
  CHECK(print_tape(tape) ==
        "#   op   inputs              shape   value\n"
        "#0  mul  leaf (2,), const 2  (2,)    [2, 4]\n"
        "#1  add  #0, leaf (2,)       (2,)    [3, 6]\n"
        "#2  sum  #1                  ()      9\n"
        "#3  mul  const (2, 3), #2    (2, 3)  mean=13.5 min=-54 max=45\n"
        "#4  sum  #3                  ()      81\n");
}

TEST_CASE("inspect: explain_backward walks the RNN's tape from the loss back to the leaves") {
  Tape tape;
  Rnn rnn;
  Tensor loss = rnn.loss();
  const std::string text = explain_backward(loss);
  CHECK(text ==
        "#11 sum(#10) → ()\n"
        "    dy     1\n"
        "    rule   d#10 += broadcast(dy)\n"
        "    → #10  [[1], [1]]\n"
        "#10 mul(#9, v) → (2, 1)\n"
        "    dy    [[1], [1]]\n"
        "    rule  d#9 += dy⊙v\n"
        "    → #9  [[1], [-0.5]]\n"
        "    → v   — (constant)\n"
        "#9 tanh(#8) → (2, 1)\n"
        "    dy    [[1], [-0.5]]\n"
        "    rule  d#8 += dy⊙(1−#9²)\n"
        "    → #8  [[0.5414], [-0.361]]\n"
        "#8 add(#7, b) → (2, 1)\n"
        "    dy    [[0.5414], [-0.361]]\n"
        "    rule  d#7 += dy; db += dy (summed to shape)\n"
        "    → #7  [[0.5414], [-0.361]]\n"
        "    → b   [[0.5414], [-0.361]]\n"
        "#7 add(#5, #6) → (2, 1)\n"
        "    dy    [[0.5414], [-0.361]]\n"
        "    rule  d#5 += dy; d#6 += dy (summed to shape)\n"
        "    → #5  [[0.5414], [-0.361]]\n"
        "    → #6  [[0.5414], [-0.361]]\n"
        "#6 matmul(W_h, #4) → (2, 1)\n"
        "    dy     [[0.5414], [-0.361]]\n"
        "    rule   dW_h += dy·#4ᵀ; d#4 += W_hᵀ·dy\n"
        "    → W_h  [[0.271, -0.2057], [-0.1807, 0.1372]]\n"
        "    → #4   [[-0.09028], [-0.2166]]\n"
        "#5 matmul(W_x, x2) → (2, 1)\n"
        "    dy     [[0.5414], [-0.361]]\n"
        "    rule   dW_x += dy·x2ᵀ\n"
        "    → W_x  [[-1.083], [0.7221]]\n"
        "    → x2   — (constant)\n"
        "#4 tanh(#3) → (2, 1)\n"
        "    dy    [[-0.09028], [-0.2166]]\n"
        "    rule  d#3 += dy⊙(1−#4²)\n"
        "    → #3  [[-0.06766], [-0.1853]]\n"
        "#3 add(#2, b) → (2, 1)\n"
        "    dy    [[-0.06766], [-0.1853]]\n"
        "    rule  d#2 += dy; db += dy (summed to shape)\n"
        "    → #2  [[-0.06766], [-0.1853]]\n"
        "    → b   [[-0.06766], [-0.1853]]\n"
        "#2 add(#0, #1) → (2, 1)\n"
        "    dy    [[-0.06766], [-0.1853]]\n"
        "    rule  d#0 += dy; d#1 += dy (summed to shape)\n"
        "    → #0  [[-0.06766], [-0.1853]]\n"
        "    → #1  [[-0.06766], [-0.1853]]\n"
        "#1 matmul(W_h, h0) → (2, 1)\n"
        "    dy     [[-0.06766], [-0.1853]]\n"
        "    rule   dW_h += dy·h0ᵀ\n"
        "    → W_h  [[0, 0], [0, 0]]\n"
        "    → h0   — (constant)\n"
        "#0 matmul(W_x, x1) → (2, 1)\n"
        "    dy     [[-0.06766], [-0.1853]]\n"
        "    rule   dW_x += dy·x1ᵀ\n"
        "    → W_x  [[-0.06766], [-0.1853]]\n"
        "    → x1   — (constant)\n"
        "leaf gradients (the sum of what each leaf was sent):\n"
        "    W_x  [[-1.15], [0.5368]]                    from #5 + #0\n"
        "    W_h  [[0.271, -0.2057], [-0.1807, 0.1372]]  from #6 + #1\n"
        "    b    [[0.4737], [-0.5464]]                  from #8 + #3\n");

  SUBCASE("it accumulates into .grad() like backward, and keeps the tape") {
    check_close(rnn.W_x.grad(), {-1.15, 0.5368});
    check_close(rnn.W_h.grad(), {0.271, -0.2057, -0.1807, 0.1372});
    check_close(rnn.b.grad(), {0.4737, -0.5464});
    CHECK(tape.size() == 12);
    CHECK(explain_tape(tape) == text);  // the same sweep, rendered again from the kept adjoints
  }
  SUBCASE("the explanation agrees with backward() on a fresh recording") {
    Rnn fresh;
    fresh.loss().backward();
    CHECK(fresh.W_x.grad().to_vector() == rnn.W_x.grad().to_vector());
    CHECK(fresh.W_h.grad().to_vector() == rnn.W_h.grad().to_vector());
    CHECK(fresh.b.grad().to_vector() == rnn.b.grad().to_vector());
  }
}

TEST_CASE("inspect: explain shows fan-out as several contributions to one leaf") {
  Tape tape;
  Tensor x = Tensor::from_vector(std::vector<double>{1, 2}, {2}, float64).set_name("x").set_requires_grad();
  Tensor y = sum(x * x + x);  // dy/dx = 2x + 1 = [3, 5]
  CHECK(explain_backward(y) ==
        "#2 sum(#1) → ()\n"
        "    dy    1\n"
        "    rule  d#1 += broadcast(dy)\n"
        "    → #1  [1, 1]\n"
        "#1 add(#0, x) → (2,)\n"
        "    dy    [1, 1]\n"
        "    rule  d#0 += dy; dx += dy (summed to shape)\n"
        "    → #0  [1, 1]\n"
        "    → x   [1, 1]\n"
        "#0 mul(x, x) → (2,)\n"
        "    dy    [1, 1]\n"
        "    rule  dx += dy⊙x; dx += dy⊙x\n"
        "    → x   [1, 2]\n"
        "    → x   [1, 2]\n"
        "leaf gradients (the sum of what each leaf was sent):\n"
        "    x  [3, 5]  from #1 + #0 + #0\n");
  CHECK(x.grad().to_vector() == std::vector<double>{3, 5});
}

TEST_CASE("inspect: explain_tape needs kept adjoints — entries off the path say so") {
  Tape tape;
  Tensor x = Tensor::from_vector(std::vector<double>{0.5}, {1}, float64).set_name("x").set_requires_grad();
  CHECK(explain_tape(tape) == "(empty tape)\n");
  CHECK(explain_backward(x, Tensor::ones({1}, float64)) ==
        "x is a leaf: its gradient is the seed, nothing was recorded\n");
  CHECK(x.grad().to_vector() == std::vector<double>{1});
  x.zero_grad(true);
  Tensor a = exp(x);
  Tensor unused = neg(x);  // recorded, but the root does not depend on it
  CHECK(explain_tape(tape) == "(no adjoints on this tape: sweep it with keep_adjoints, or use explain_backward)\n");
  // e^0.5 = 1.648721…
  CHECK(explain_backward(a, Tensor::ones({1}, float64)) ==
        "#1 neg(x) → (1,)\n"
        "    (no adjoint reached it)\n"
        "#0 exp(x) → (1,)\n"
        "    dy    [1]\n"
        "    rule  dx += dy⊙#0\n"
        "    → x   [1.649]\n"
        "leaf gradients (the sum of what each leaf was sent):\n"
        "    x  [1.649]  from #0\n");
}

TEST_CASE("inspect: describe_step renders one step of a ReverseSweep") {
  Tape tape;
  Rnn rnn;
  Tensor loss = rnn.loss();
  ReverseSweep sweep(loss);
  CHECK(describe_step(sweep) == "(no step taken yet)\n");
  REQUIRE(sweep.step());
  CHECK(describe_step(sweep) ==
        "#11 sum(#10) → ()\n"
        "    dy     1\n"
        "    rule   d#10 += broadcast(dy)\n"
        "    → #10  [[1], [1]]\n");
  REQUIRE(sweep.step());
  REQUIRE(sweep.step());
  CHECK(describe_step(sweep) ==
        "#9 tanh(#8) → (2, 1)\n"
        "    dy    [[1], [-0.5]]\n"
        "    rule  d#8 += dy⊙(1−#9²)\n"
        "    → #8  [[0.5414], [-0.361]]\n");
  // Seven steps later the sweep reaches #1, whose constant input h0 gets nothing.
  for (int k = 0; k < 8; ++k) REQUIRE(sweep.step());
  CHECK(describe_step(sweep) ==
        "#1 matmul(W_h, h0) → (2, 1)\n"
        "    dy     [[-0.06766], [-0.1853]]\n"
        "    rule   dW_h += dy·h0ᵀ\n"
        "    → W_h  [[0, 0], [0, 0]]\n"
        "    → h0   — (constant)\n");
  REQUIRE(sweep.step());  // #0
  CHECK(!sweep.step());
  CHECK(describe_step(sweep) == "(the sweep is finished)\n");
  CHECK(tape.empty());  // not retained: the sweep cleared the tape
  check_close(rnn.W_x.grad(), {-1.15, 0.5368});
}

TEST_CASE("inspect: to_dot of fan-out, before and after the sweep") {
  Tape tape;
  Tensor x = Tensor::from_vector(std::vector<double>{1, 2}, {2}, float64).set_name("x").set_requires_grad();
  Tensor y = sum(x * x + x);
  const std::string head =
      "digraph tape {\n"
      "  rankdir=LR;\n"
      "  node [shape=box, fontname=\"monospace\", fontsize=10];\n"
      "  edge [fontname=\"monospace\", fontsize=9, fontcolor=\"#b03020\"];\n";
  CHECK(to_dot(tape) == head + R"(  leaf0 [label="x\n(2,)\n[1, 2]", shape=ellipse, style=filled, fillcolor="#dbe9f6"];
  n0 [label="#0 mul\n(2,)\n[1, 4]"];
  leaf0 -> n0;
  leaf0 -> n0;
  n1 [label="#1 add\n(2,)\n[2, 6]"];
  n0 -> n1;
  leaf0 -> n1;
  n2 [label="#2 sum\n()\n8"];
  n1 -> n2;
}
)");
  explain_backward(y);
  CHECK(to_dot(tape) == head + R"(  leaf0 [label="x\n(2,)\n[1, 2]\ngrad [3, 5]", shape=ellipse, style=filled, fillcolor="#dbe9f6"];
  n0 [label="#0 mul\n(2,)\n[1, 4]\nadj [1, 1]"];
  leaf0 -> n0 [label="[1, 2]"];
  leaf0 -> n0 [label="[1, 2]"];
  n1 [label="#1 add\n(2,)\n[2, 6]\nadj [1, 1]"];
  n0 -> n1 [label="[1, 1]"];
  leaf0 -> n1 [label="[1, 1]"];
  n2 [label="#2 sum\n()\n8\nadj 1"];
  n1 -> n2 [label="[1, 1]"];
}
)");
}

TEST_CASE("inspect: to_dot of the RNN: leaves, entries, one edge per input, escaped names") {
  Tape tape;
  Rnn rnn;
  rnn.v.set_name("v \"out\" \\ w");  // quotes and a backslash must be escaped in DOT
  Tensor loss = rnn.loss();
  explain_backward(loss);
  const std::string dot = to_dot(tape);
  CHECK(dot.rfind("digraph tape {\n", 0) == 0);
  CHECK(dot.size() >= 2);
  CHECK(dot.substr(dot.size() - 2) == "}\n");
  CHECK(count(dot, " -> ") == 21);    // Σ inputs over the 12 entries
  CHECK(count(dot, "shape=ellipse") == 7);  // W_x, x1, W_h, h0, b, x2, v
  CHECK(count(dot, " [label=\"#") == 12);  // one node per entry
  CHECK(dot.find(R"(  leaf0 [label="W_x\n(2, 1)\n[0.5, -0.3]\ngrad [-1.15, 0.5368]", shape=ellipse, style=filled, fillcolor="#dbe9f6"];)") !=
        std::string::npos);
  CHECK(dot.find(R"(  leaf3 [label="h0\n(2, 1)\n[0, 0]", shape=ellipse, color=gray];)") != std::string::npos);
  CHECK(dot.find(R"(  leaf3 -> n1;)") != std::string::npos);
  CHECK(dot.find(R"(  n9 [label="#9 tanh\n(2, 1)\n[-0.6772, 0.5272]\nadj [1, -0.5]"];)") != std::string::npos);
  CHECK(dot.find(R"(  n8 -> n9 [label="[0.5414, -0.361]"];)") != std::string::npos);
  CHECK(dot.find(R"(  n4 -> n6 [label="[-0.09028, -0.2166]"];)") != std::string::npos);
  CHECK(dot.find(R"(  leaf6 [label="v \"out\" \\ w\n(2, 1)\n[1, -0.5]", shape=ellipse, color=gray];)") !=
        std::string::npos);
  CHECK(dot.find(R"(  leaf6 -> n10;)") != std::string::npos);
}

TEST_CASE("inspect: tape_stats counts entries and output bytes per op") {
  Tape tape;
  CHECK(tape_stats(tape).entries == 0);
  CHECK(tape_stats(tape).str() == "0 entries, 0 bytes of values\n");
  Rnn rnn;
  Tensor loss = rnn.loss();
  // 11 entries of (2, 1) float64 = 16 bytes each, plus the 0-d sum = 8 bytes.
  const TapeStats s = tape_stats(tape);
  CHECK(s.entries == 12);
  CHECK(s.bytes == 11 * 16 + 8);
  REQUIRE(s.per_op.size() == 5);
  CHECK(s.per_op[0].op == "add");
  CHECK(s.per_op[0].count == 4);
  CHECK(s.per_op[0].bytes == 64);
  CHECK(s.per_op[1].op == "matmul");
  CHECK(s.per_op[1].count == 4);
  CHECK(s.per_op[1].bytes == 64);
  CHECK(s.per_op[2].op == "tanh");
  CHECK(s.per_op[2].bytes == 32);
  CHECK(s.per_op[3].op == "mul");
  CHECK(s.per_op[4].op == "sum");
  CHECK(s.per_op[4].bytes == 8);
  CHECK(s.str() ==
        "12 entries, 184 bytes of values\n"
        "  op      count  bytes\n"
        "  add         4     64\n"
        "  matmul      4     64\n"
        "  tanh        2     32\n"
        "  mul         1     16\n"
        "  sum         1      8\n");

  SUBCASE("float32 values count 4 bytes an element") {
    Tape t32;
    Tensor w = Tensor::ones({3, 4}).set_requires_grad();
    Tensor y = sum(tanh(w));
    const TapeStats s32 = tape_stats(t32);
    CHECK(s32.entries == 2);
    CHECK(s32.bytes == 12 * 4 + 4);
    CHECK(s32.str() ==
          "2 entries, 52 bytes of values\n"
          "  op    count  bytes\n"
          "  tanh      1     48\n"
          "  sum       1      4\n");
  }
}

TEST_CASE("inspect: a recorded value the user names shows its name in the tape and the explanation") {
  Tape tape;
  Tensor x = Tensor::from_vector(std::vector<double>{1, 2}, {2}, float64).set_name("x").set_requires_grad();
  Tensor h = tanh(x).set_name("h1");
  Tensor loss = sum(h * h);
  const std::string printed = print_tape(tape);
  CHECK(contains(printed, "#0:h1"));
  CHECK(contains(printed, "mul   #0:h1, #0:h1"));
  const std::string explained = explain_backward(loss);
  CHECK(contains(explained, "#0:h1 tanh(x) → (2,)"));
  CHECK(contains(explained, "→ #0:h1"));
}

TEST_CASE("inspect: a recurrent layer's entries carry their time step (t=2), the rest none") {
  Generator gen(7);
  Recurrent rnn = RNN(1, 2, "tanh", {.dtype = float64}, {}, gen);
  Tape tape;
  const Tensor seq = Tensor::uniform({3, 1, 1}, -1, 1, gen, float64);
  Tensor loss = sum(rnn(seq));
  std::size_t last_step_entry = 0;
  for (std::size_t i = 0; i < tape.size(); ++i) {
    if (tape.step_of(i) == 2) last_step_entry = i;
    CHECK(tape.step_of(i) <= 2);
  }
  CHECK(tape.step_of(0) == 0);
  CHECK(tape.step_of(tape.size() - 1) == -1);  // the loss's sum, after the loop
  CHECK(last_step_entry > 0);
  const std::string printed = print_tape(tape);
  CHECK(contains(printed.substr(0, printed.find('\n')), " t  op "));  // the header has a t column
  CHECK(contains(printed, "\n#8   2  tanh"));
  const std::string explained = explain_backward(loss);
  CHECK(contains(explained, "#" + std::to_string(last_step_entry) + " t=2 "));
  CHECK(contains(explained, "#" + std::to_string(tape.size() - 1) + " sum("));
  // Nothing recorded (no_grad): the marks do not pile up on the tape (one at most), and a cleared
  // tape has none.
  {
    NoGradGuard no_grad;
    for (int k = 0; k < 100; ++k) rnn(seq);
  }
  tape.clear();
  CHECK(tape.step_of(0) == -1);
}

TEST_CASE("inspect: to_dot boxes a recurrent layer's time steps and lays out top to bottom on request") {
  Generator gen(7);
  Recurrent rnn = RNN(1, 2, "tanh", {.dtype = float64}, {}, gen);
  Tape tape;
  Tensor loss = sum(rnn(Tensor::uniform({3, 1, 1}, -1, 1, gen, float64)));
  const std::string dot = to_dot(tape);
  CHECK(contains(dot, "rankdir=LR;"));
  for (const char* t : {"label=\"t=0\"", "label=\"t=1\"", "label=\"t=2\""}) CHECK(contains(dot, t));
  CHECK(contains(dot, "subgraph cluster_2 {"));
  CHECK_FALSE(contains(dot, "subgraph cluster_3"));
  // Every node is declared once, clusters balanced.
  CHECK(std::count(dot.begin(), dot.end(), '{') == std::count(dot.begin(), dot.end(), '}'));
  const std::string tb = to_dot(tape, {.top_to_bottom = true, .cluster_steps = false});
  CHECK(contains(tb, "rankdir=TB;"));
  CHECK_FALSE(contains(tb, "subgraph"));
}

TEST_CASE("inspect: gradient_flow gives ‖∂L/∂h_t‖ per step, vanishing towards t = 0 in a tanh RNN") {
  Generator gen(1);
  RNNCell cell(1, 8, "tanh", {.dtype = float64}, gen);
  Tape tape;
  const Tensor seq = Tensor::uniform({30, 1, 4}, -1, 1, gen, float64);
  State s = cell.initial_state(4);
  std::vector<Tensor> hs;
  for (const Tensor& x : split_steps(seq)) {
    auto [y, next] = cell.step(x, s);
    s = next;
    hs.push_back(y);
  }
  Tensor loss = sum(hs[27] * hs[27]);  // steps 28 and 29 do not reach the loss
  const std::vector<double> f = gradient_flow(loss, hs);
  REQUIRE(f.size() == 30);
  // The same numbers as grad() by hand.
  const std::vector<Tensor> g = grad({loss}, {hs[27], hs[10], hs[0]}, {}, SweepOptions{.retain = true});
  auto norm = [](const Tensor& t) {
    double a = 0;
    for (double v : t.to_vector()) a += v * v;
    return std::sqrt(a);
  };
  CHECK(f[27] == doctest::Approx(norm(g[0])).epsilon(1e-12));
  CHECK(f[10] == doctest::Approx(norm(g[1])).epsilon(1e-12));
  CHECK(f[0] == doctest::Approx(norm(g[2])).epsilon(1e-12));
  CHECK(f[28] == 0);
  CHECK(f[29] == 0);
  // Vanishing: each step back multiplies by about ‖W_hh‖·tanh' < 1.
  CHECK(f[0] < 1e-3 * f[27]);
  CHECK(f[10] < f[20]);
  // Errors name what is wrong; the tape is kept, so a backward still works.
  CHECK_THROWS_AS(gradient_flow(loss, {Tensor::zeros({8, 4}, float64)}), TapeError);  // a constant step
  CHECK_THROWS_AS(gradient_flow(hs[0], {hs[0]}), ShapeError);                         // not one number
  CHECK_THROWS_AS(gradient_flow(loss, {}), ValueError);
  loss.backward();
  CHECK(cell.weight_hh.grad().defined());
}

TEST_CASE("inspect: the explain view shows each rule with the entry's own operands and values with their shape") {
  Tape tape;
  Rnn rnn;
  Tensor loss = rnn.loss();
  // The rule's symbols (A, B, dC; x, y) become the operands: a leaf's name, "#k" for an entry, dy
  // for the adjoint that arrived. A clause for an input that takes no gradient (x2, v) is dropped.
  CHECK(rule_with_operands(tape, 6) == "dW_h += dy·#4ᵀ; d#4 += W_hᵀ·dy");
  CHECK(rule_with_operands(tape, 5) == "dW_x += dy·x2ᵀ");
  CHECK(rule_with_operands(tape, 9) == "d#8 += dy⊙(1−#9²)");
  CHECK(rule_with_operands(tape, 10) == "d#9 += dy⊙v");
  CHECK(rule_with_operands(tape, 8) == "d#7 += dy; db += dy (summed to shape)");
  CHECK(rule_with_operands(tape, 11) == "d#10 += broadcast(dy)");
  const std::string text = explain_backward(loss);
  CHECK(contains(text, "#6 matmul(W_h, #4) → (2, 1)\n"
                       "    dy     [[0.5414], [-0.361]]\n"
                       "    rule   dW_h += dy·#4ᵀ; d#4 += W_hᵀ·dy\n"
                       "    → W_h  [[0.271, -0.2057], [-0.1807, 0.1372]]\n"
                       "    → #4   [[-0.09028], [-0.2166]]\n"));
  // The sum of what each leaf was sent, with its shape and where it came from.
  CHECK(contains(text, "    W_h  [[0.271, -0.2057], [-0.1807, 0.1372]]  from #6 + #1\n"));

  SUBCASE("a division uses its output (z), a one-element constant shows its value, a custom op's rule too") {
    Tensor x = Tensor::from_vector(std::vector<double>{1, 2}, {2}, float64).set_name("x").set_requires_grad();
    Tensor d = Tensor::from_vector(std::vector<double>{3, 4}, {2}, float64).set_requires_grad();
    Tensor q = x / d;                                                                            // #12
    Tensor s = q * -0.5;                                                                         // #13
    Tensor c = custom_op("softsign", {s}, [](const std::vector<Tensor>& in) { return in[0] / (1.0 + abs(in[0])); },
                         [](BackwardContext& ctx) { ctx.accumulate(0, ctx.grad_out()); }, "dx += dy/(1+|x|)²");
    CHECK(rule_with_operands(tape, 12) == "dx += dy/(leaf (2,)); d(leaf (2,)) −= dy⊙#12/(leaf (2,))");
    CHECK(rule_with_operands(tape, 13) == "d#12 += dy⊙(-0.5)");
    CHECK(rule_with_operands(tape, c.tape_index()) == "d#13 += dy/(1+|#13|)²");
    // A big gradient is summarised, with its shape first.
    Tape fresh;
    Tensor big = sum(matmul(Tensor::ones({3, 4}, float64).set_name("M").set_requires_grad(), Tensor::ones({4, 2}, float64)));
    CHECK(contains(explain_backward(big), "    M  (3, 4) mean=2 min=2 max=2  from #0\n"));
  }
}
