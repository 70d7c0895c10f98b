// Tape::drop_unread (autograd/tape.hpp): the values no backward reads are freed once nothing outside
// the tape holds them — and the gradients stay the same, bit for bit.
#include <doctest/doctest.h>

#include <string>

#include <rewind.hpp>

#include "support.hpp"

using namespace rwd;

namespace {

// y = σ(W·x + b) ⊙ tanh(x₂), a few entries whose backward reads some values and not others.
struct Small {
  Tensor W, b, x, x2;
  explicit Small(Generator& gen)
      : W(Tensor::uniform({3, 3}, -1, 1, gen, float64).set_requires_grad()),
        b(Tensor::uniform({3, 1}, -1, 1, gen, float64).set_requires_grad()),
        x(Tensor::uniform({3, 2}, -1, 1, gen, float64).set_requires_grad()),
        x2(Tensor::uniform({3, 2}, -1, 1, gen, float64).set_requires_grad()) {}
};

}  // namespace

TEST_CASE("tape memory: drop_unread frees what no backward reads, and the gradients stay the same bits") {
  const DropAtAnySize drop_at_any_size;
  Generator gen(1);
  Small s(gen);
  auto grads = [&](bool hold) {
    for (Tensor* p : {&s.W, &s.b, &s.x, &s.x2}) p->zero_grad(true);
    Tape tape;
    Tensor pre = matmul(s.W, s.x) + s.b;  // add: its backward reads neither operand
    Tensor gate = sigmoid(pre);            // sigmoid: reads its output only
    Tensor y = gate * tanh(s.x2);          // mul: reads both operands
    Tensor held = hold ? pre : Tensor();
    pre = Tensor();
    tape.drop_unread();
    // matmul's output (read by nobody: add reads nothing) and the add's (sigmoid reads its output) go,
    // unless a handle holds it; σ's output and tanh's output stay (the mul reads them), and y is held.
    CHECK(tape[0].output.value_dropped());
    CHECK(tape[1].output.value_dropped() == !hold);
    CHECK_FALSE(tape[2].output.value_dropped());
    CHECK_FALSE(tape[3].output.value_dropped());
    CHECK_FALSE(tape[4].output.value_dropped());
    CHECK(tape_stats(tape).bytes == (hold ? 4u : 3u) * 6 * sizeof(double));
    backward(sum(y * y));
    std::vector<double> g;
    for (Tensor* p : {&s.W, &s.b, &s.x, &s.x2}) {
      const std::vector<double> v = p->grad().to_vector();
      g.insert(g.end(), v.begin(), v.end());
    }
    return g;
  };
  CHECK(grads(false) == grads(true));
}

TEST_CASE("tape memory: a dropped value says so when read, and the teaching views say it was not kept") {
  const DropAtAnySize drop_at_any_size;
  Generator gen(2);
  Small s(gen);
  Tape tape;
  const Tensor y = sum(sigmoid(matmul(s.W, s.x) + s.b));
  tape.drop_unread();
  const Tensor pre = Tensor(tape[1].output);  // the add's output, dropped
  CHECK(pre.value_dropped());
  CHECK(pre.shape() == Shape{3, 2});  // its shape stays
  CHECK_THROWS_WITH_AS(pre.to_vector(), doctest::Contains("was not kept: no backward reads it"), TapeError);
  CHECK(pre.str() == "tensor(not kept: (3, 2))");
  CHECK(print_tape(tape).find("(not kept: no backward reads it)") != std::string::npos);
  backward(y);
  CHECK(s.W.grad().defined());
}

TEST_CASE("tape memory: an LSTM step keeps 7 (hidden, batch) values on the tape, not 17 entries' worth") {
  // i, f, g, σ(o), c', tanh(c') and h' are read by some backward; the gate block, its four slices, the
  // input projection and the products f⊙c and i⊙g are not.
  for (bool whole_sequence : {false, true}) {
    INFO("whole sequence: " << whole_sequence);
    Generator gen(10);
    Recurrent r = LSTM(32, 64, {}, gen);
    auto bytes_after = [&](std::size_t steps) {
      Tape tape;
      reset(r);
      Tensor x = Tensor::uniform({32, 16}, -1, 1, gen);
      Tensor loss = Tensor::scalar(0.0);
      if (whole_sequence) {
        loss = sum(r(Tensor::uniform({steps, 32, 16}, -1, 1, gen)));
      } else {
        for (std::size_t t = 0; t < steps; ++t) loss = loss + sum(r(x));
      }
      tape.drop_unread();
      return tape_stats(tape).bytes;
    };
    const double per_step = static_cast<double>(bytes_after(48) - bytes_after(16)) / 32.0;
    CHECK(per_step == 7 * 64 * 16 * sizeof(float));
  }
}

TEST_CASE("tape memory: a tape under 1 MiB of values drops nothing, and the first call past it looks at every entry") {
  // The same four entries twice: at (64, 64) float64 — 32 KiB a value — and at (200, 200), 312.5 KiB.
  auto dropped_first = [](std::size_t n, std::size_t* bytes) {
    Generator gen(3);
    const Tensor a = Tensor::uniform({n, n}, -1, 1, gen, float64).set_requires_grad();
    Tape tape;
    Tensor pre = a + a;            // read by nobody (sigmoid reads its own output)
    Tensor y = sigmoid(pre);
    pre = Tensor();
    tape.drop_unread();
    const bool first = tape[0].output.value_dropped();
    Tensor z = tanh(y) * y;       // the tape grows past 1 MiB at n = 200: the next call drops entry 0
    tape.drop_unread();
    *bytes = tape_stats(tape).bytes;
    return std::pair{first, tape[0].output.value_dropped()};
  };
  std::size_t small_bytes = 0, large_bytes = 0;
  const auto small = dropped_first(64, &small_bytes);
  CHECK_FALSE(small.first);
  CHECK_FALSE(small.second);
  CHECK(small_bytes == 4u * 64 * 64 * sizeof(double));  // every value kept
  const auto large = dropped_first(200, &large_bytes);
  CHECK_FALSE(large.first);  // 2 × 312.5 KiB recorded: not yet 1 MiB
  CHECK(large.second);       // 4 × 312.5 KiB: the add's output, read by nobody, goes
  CHECK(large_bytes == 3u * 200 * 200 * sizeof(double));
  {
    const DropAtAnySize drop_at_any_size;
    std::size_t bytes = 0;
    CHECK(dropped_first(64, &bytes).first);  // with the gate at 0, at once
  }
}
