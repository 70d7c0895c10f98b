// Independent work in parallel (issue 12, item 4): a bidirectional layer's two directions at once —
// the reverse one on another thread, on a tape of its own joined to the caller's as one entry, swept
// beside the forward one (autograd/detail/beside.hpp, kernels/pool.hpp run_two). Each case checks that
// the entry is there (so a silent fall-back to one direction after the other fails), and compares
// against the one-after-the-other run of the same model: outputs the same bits, gradients within float
// reordering, in float64; gradcheck against central differences on top.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <rewind.hpp>

#include "autograd/detail/beside.hpp"
#include "kernels/pool.hpp"
#include "support.hpp"

using namespace rwd;

namespace {

struct Threads {
  int previous = get_num_threads();
  explicit Threads(int n) { set_num_threads(n); }
  ~Threads() { set_num_threads(previous); }
};

struct Beside {
  bool previous;
  explicit Beside(bool on) : previous(detail::set_beside(on)) {}
  ~Beside() { detail::set_beside(previous); }
};

std::size_t entries_named(const Tape& tape, const std::string& op) {
  std::size_t n = 0;
  for (const Node& e : tape.entries()) n += std::string(e.op) == op;
  return n;
}

double max_rel_diff(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to_vector(), y = b.to_vector();
  REQUIRE(x.size() == y.size());
  double m = 0;
  for (std::size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]) / std::max(1.0, std::abs(y[i])));
  return m;
}

bool same_bits(const Tensor& a, const Tensor& b) { return a.to_vector() == b.to_vector(); }

enum class Kind { rnn, lstm, gru };

Recurrent make(Kind kind, std::size_t in, std::size_t hidden, RecurrentOptions ro, Generator& gen) {
  return kind == Kind::rnn    ? RNN(in, hidden, "tanh", {.dtype = float64}, ro, gen)
         : kind == Kind::lstm ? LSTM(in, hidden, {.dtype = float64}, ro, gen)
                              : GRU(in, hidden, {.dtype = float64}, ro, gen);
}

// What one training step computes: the output, and every parameter's gradient then the input's.
struct Result {
  Tensor y;
  std::vector<Tensor> grads;
  std::size_t beside_entries = 0;
};

Result run(Recurrent& r, Tensor seq, const Tensor& mask, const Tensor& w, const std::vector<State>& init = {}) {
  r.zero_grad();
  seq.zero_grad();
  Tape tape;
  Result out;
  Tensor y = r(seq, mask, init);
  out.y = y.detach();
  for (std::size_t l = 0; l < r.num_layers(); ++l) out.beside_entries += entries_named(tape, "layer" + std::to_string(l) + "_reverse");
  backward(sum(y * w));
  for (const Tensor& p : r.parameters()) out.grads.push_back(p.grad().detach());
  out.grads.push_back(seq.grad().detach());
  return out;
}

void check_same(const Result& beside, const Result& sequential, double tol = 1e-13) {
  CHECK(same_bits(beside.y, sequential.y));
  REQUIRE(beside.grads.size() == sequential.grads.size());
  for (std::size_t k = 0; k < beside.grads.size(); ++k) {
    CAPTURE(k);
    CHECK(max_rel_diff(beside.grads[k], sequential.grads[k]) <= tol);
  }
}

}  // namespace

TEST_CASE("beside: a bidirectional layer's reverse direction runs beside the forward one, with the same gradients") {
  Threads threads(2);
  const std::size_t T = 5, F = 3, H = 4, B = 6;
  for (Kind kind : {Kind::rnn, Kind::lstm, Kind::gru}) {
    CAPTURE(static_cast<int>(kind));
    struct Config {
      const char* what;
      RecurrentOptions ro;
      bool masked;
    };
    const std::vector<Config> configs = {
        {"bidirectional", {.bidirectional = true}, false},
        {"bidirectional, masked, last output", {.bidirectional = true, .return_sequences = false}, true},
        {"stacked bidirectional, merge sum, masked", {.num_layers = 2, .bidirectional = true, .merge = Merge::sum}, true},
        {"checkpointed bidirectional", {.bidirectional = true, .checkpoint = {.on = true, .every = 2}}, true},
    };
    for (const Config& cfg : configs) {
      CAPTURE(cfg.what);
      Generator gen(11);
      Recurrent r = make(kind, F, H, cfg.ro, gen);
      Tensor seq = Tensor::uniform({T, F, B}, -1, 1, gen, float64).set_requires_grad();
      std::vector<std::size_t> lengths(B);
      for (std::size_t b = 0; b < B; ++b) lengths[b] = 1 + (b * 3) % T;
      const Tensor mask = cfg.masked ? mask_from_lengths(lengths, T, float64) : Tensor();
      Tensor w;
      {
        NoGradGuard no_grad;
        w = Tensor::uniform(r(seq, mask).shape(), -1, 1, gen, float64);
      }
      Result sequential, beside;
      {
        Beside off(false);
        sequential = run(r, seq, mask, w);
      }
      {
        Beside on(true);
        beside = run(r, seq, mask, w);
        const Result again = run(r, seq, mask, w);  // the same bits from run to run
        for (std::size_t k = 0; k < beside.grads.size(); ++k) CHECK(same_bits(again.grads[k], beside.grads[k]));
      }
      CHECK(sequential.beside_entries == 0);
      CHECK(beside.beside_entries == r.num_layers());
      check_same(beside, sequential);
      // And against central differences, beside.
      Beside on(true);
      std::vector<Tensor> inputs = r.parameters();
      inputs.push_back(seq);
      const GradcheckReport rep = gradcheck([&](const std::vector<Tensor>&) { return r(seq, mask); }, inputs);
      CHECK_MESSAGE(rep.ok(), rep.str());
    }
  }
}

TEST_CASE("beside: initial states with history, and a loss on the final states") {
  Threads threads(2);
  Generator gen(5);
  const std::size_t T = 4, F = 3, H = 5, B = 3;
  Recurrent r = LSTM(F, H, {.dtype = float64}, {.bidirectional = true}, gen);
  // h0 and c0 of each direction computed from a parameter (history on the caller's tape).
  Tensor z = Tensor::uniform({H, B}, -0.5, 0.5, gen, float64).set_requires_grad();
  Tensor seq = Tensor::uniform({T, F, B}, -1, 1, gen, float64).set_requires_grad();
  auto step = [&](bool on) {
    Beside mode(on);
    r.zero_grad();
    z.zero_grad();
    seq.zero_grad();
    Tape tape;
    const std::vector<State> init = {{tanh(z), z * 0.5}, {sigmoid(z), -z}};
    Tensor y = r(seq, Tensor(), init);
    CHECK(entries_named(tape, "layer0_reverse") == (on ? 1u : 0u));
    Tensor loss = sum(y * y);
    for (const State& s : r.final_states())
      for (const Tensor& t : s) loss = loss + sum(t * t) * 0.3;
    backward(loss);
    std::vector<Tensor> g{z.grad().detach(), seq.grad().detach()};
    for (const Tensor& p : r.parameters()) g.push_back(p.grad().detach());
    return g;
  };
  const std::vector<Tensor> a = step(false), b = step(true);
  for (std::size_t k = 0; k < a.size(); ++k) {
    CAPTURE(k);
    CHECK(max_rel_diff(b[k], a[k]) <= 1e-13);
  }
}

TEST_CASE("beside: double backward, retain, grad(), hooks and the explain sweep see the reverse direction") {
  Threads threads(2);
  Beside on(true);
  Generator gen(7);
  const std::size_t T = 3, F = 2, H = 3, B = 2;
  Recurrent r = GRU(F, H, {.dtype = float64}, {.bidirectional = true}, gen);
  Tensor seq = Tensor::uniform({T, F, B}, -1, 1, gen, float64).set_requires_grad();
  const Tensor W = r.cell(0, true).parameters()[0];  // a weight of the reverse direction

  SUBCASE("create_graph: a Hessian-vector product equals the one-after-the-other run's") {
    auto hvp = [&](bool beside) {
      Beside mode(beside);
      Tape tape;
      Tensor loss = sum(tanh(r(seq)));
      Tensor g = grad({loss}, {W}, {}, {.create_graph = true})[0];
      Tensor v = Tensor::ones(W.shape(), float64);
      return grad({sum(g * v)}, {W})[0];
    };
    const Tensor a = hvp(false), b = hvp(true);
    CHECK(max_rel_diff(b, a) <= 1e-12);
  }
  SUBCASE("retain: a second backward adds the same gradient again") {
    r.zero_grad();
    Tape tape;
    Tensor loss = sum(r(seq));
    backward(loss, Tensor(), {.retain = true});
    const Tensor once = W.grad().detach();
    backward(loss);
    CHECK(max_rel_diff(W.grad(), once * 2.0) <= 1e-14);
  }
  SUBCASE("grad() of the input and of a reverse weight, .grad() untouched") {
    r.zero_grad();
    Tensor g_seq, g_W;
    {
      Tape tape;
      auto g = grad({sum(r(seq) * r(seq))}, {seq, W});
      g_seq = g[0];
      g_W = g[1];
    }
    CHECK_FALSE(W.grad().defined());
    Beside off(false);
    Tape tape;
    auto g = grad({sum(r(seq) * r(seq))}, {seq, W});
    CHECK(max_rel_diff(g_seq, g[0]) <= 1e-13);
    CHECK(max_rel_diff(g_W, g[1]) <= 1e-13);
  }
  SUBCASE("gradient-ready hooks fire once per parameter, with its final gradient") {
    r.zero_grad();
    std::vector<std::pair<const void*, Tensor>> seen;
    auto hook = on_grad_ready([&](const Tensor& p) { seen.emplace_back(p.impl_ptr().get(), p.grad().detach()); });
    Tape tape;
    backward(sum(r(seq)));
    std::size_t params = 0;
    for (const Tensor& p : r.parameters()) {
      ++params;
      std::size_t fired = 0;
      for (const auto& [who, g] : seen)
        if (who == p.impl_ptr().get()) {
          ++fired;
          CHECK(same_bits(g, p.grad()));
        }
      CHECK(fired == 1);
    }
    CHECK(seen.size() == params + 1);  // and the input's
  }
  SUBCASE("a step-through sweep takes one entry a step, the reverse direction's among them") {
    r.zero_grad();
    Tape tape;
    Tensor loss = sum(r(seq));
    const std::size_t entries = tape.size();
    ReverseSweep sweep(loss);
    std::vector<std::int64_t> seen;
    bool reverse_seen = false;
    while (sweep.step()) {
      seen.push_back(sweep.current());
      reverse_seen = reverse_seen || std::string(tape[static_cast<std::size_t>(sweep.current())].op) == "layer0_reverse";
    }
    for (std::size_t k = 1; k < seen.size(); ++k) CHECK(seen[k] < seen[k - 1]);  // one entry each, in order
    CHECK(seen.size() <= entries);
    CHECK(reverse_seen);
    CHECK(W.grad().defined());
  }
  SUBCASE("a keep_adjoints sweep (the explain view's) runs and gives the same gradients") {
    r.zero_grad();
    {
      Tape tape;
      backward(sum(r(seq)));
    }
    const Tensor plain = W.grad().detach();
    r.zero_grad();
    Tape tape;
    Tensor loss = sum(r(seq));
    ReverseSweep sweep(loss, Tensor(), {.keep_adjoints = true});
    sweep.run();
    CHECK(same_bits(W.grad(), plain));
  }
}

TEST_CASE("beside: inference and variational dropout give the same outputs as one direction after the other") {
  Threads threads(2);
  const std::size_t T = 6, F = 4, H = 5, B = 3;
  Generator data(3);
  Tensor seq = Tensor::uniform({T, F, B}, -1, 1, data, float32);
  for (bool training : {false, true}) {
    CAPTURE(training);
    auto output = [&](bool on) {
      Beside mode(on);
      Generator gen(21);
      Recurrent r = LSTM(F, H, {}, {.num_layers = 2, .bidirectional = true, .input_dropout = 0.3, .recurrent_dropout = 0.2}, gen);
      r.train(training);
      NoGradGuard no_grad;
      Tensor first = r(seq);
      return std::pair{first, r(seq)};  // a second call draws new masks
    };
    const auto [a1, a2] = output(false);
    const auto [b1, b2] = output(true);
    CHECK(same_bits(a1, b1));
    CHECK(same_bits(a2, b2));
    if (training) CHECK_FALSE(same_bits(a1, a2));
  }
}

namespace {

// A cell that throws at a chosen step, or draws a random number from the default generator at each.
class OddCell : public Cell {
 public:
  OddCell(std::size_t in, std::size_t hidden, int throw_at, bool draws, Generator& gen)
      : m_in(in), m_hidden(hidden), m_throw_at(throw_at), m_draws(draws) {
    W = register_parameter("W", init::glorot_uniform({hidden, in + hidden}, gen, float64));
  }
  std::pair<Tensor, State> step(const Tensor& x, const State& state) override {
    if (m_throw_at >= 0 && m_steps++ == m_throw_at) throw std::runtime_error("OddCell: step failed on purpose");
    Tensor h = tanh(matmul(W, concat({x, state[0]}, 0)));
    if (m_draws) h = h * (1.0 + 0.1 * default_generator().uniform());
    return {h, {h}};
  }
  State initial_state(std::size_t batch) const override { return {initial_tensor(Tensor(), m_hidden, batch, float64)}; }
  std::size_t input_size() const override { return m_in; }
  std::size_t output_size() const override { return m_hidden; }
  std::string repr() const override { return "OddCell"; }
  Tensor W;

 private:
  std::size_t m_in, m_hidden;
  int m_throw_at;
  bool m_draws;
  int m_steps = 0;
};

}  // namespace

TEST_CASE("beside: an exception in the reverse direction reaches the caller, and a draw from the default generator is the caller's") {
  Threads threads(2);
  Beside on(true);
  Generator gen(9);
  Tensor seq = Tensor::uniform({4, 2, 3}, -1, 1, gen, float64).set_requires_grad();
  SUBCASE("the reverse cell throws: the same exception, and the next call works") {
    Recurrent r({std::make_shared<OddCell>(2, 3, -1, false, gen), std::make_shared<OddCell>(2, 3, 2, false, gen)},
                {.bidirectional = true}, gen);
    Tape tape;
    CHECK_THROWS_WITH_AS(r(seq), "OddCell: step failed on purpose", std::runtime_error);
    tape.clear();
    Tensor y = r(seq);  // the reverse cell throws only once
    backward(sum(y));
    CHECK(seq.grad().defined());
  }
  SUBCASE("cells that draw: the same numbers as one direction after the other") {
    auto outputs = [&](bool beside) {
      Beside mode(beside);
      Generator g(4);
      Recurrent r({std::make_shared<OddCell>(2, 3, -1, true, g), std::make_shared<OddCell>(2, 3, -1, true, g)},
                  {.bidirectional = true}, g);
      manual_seed(77);
      Tape tape;
      Tensor y = r(seq);
      const Tensor value = y.detach();
      backward(sum(y));
      return std::pair{value, r.cell(0, true).parameters()[0].grad().detach()};
    };
    const auto [ya, ga] = outputs(false);
    const auto [yb, gb] = outputs(true);
    CHECK(same_bits(ya, yb));
    CHECK(max_rel_diff(gb, ga) <= 1e-13);
  }
}

TEST_CASE("pool: run_two runs the first task on the caller and the second beside it, and passes exceptions on") {
  Threads threads(2);
  const std::thread::id me = std::this_thread::get_id();
  for (int round = 0; round < 200; ++round) {
    std::thread::id first, second;
    std::atomic<int> ran{0};
    kernels::run_two(
        [&] {
          first = std::this_thread::get_id();
          ++ran;
        },
        [&] {
          second = std::this_thread::get_id();
          ++ran;
        });
    REQUIRE(ran == 2);
    REQUIRE(first == me);  // always: the caller's thread-local state (its tape) belongs to task 0
  }
  // At once: the first waits (up to 10 s) for the second to start, which only a worker can do meanwhile.
  {
    std::atomic<bool> second_started{false};
    bool overlapped = false;
    kernels::run_two(
        [&] {
          const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
          while (!second_started && std::chrono::steady_clock::now() < until) std::this_thread::yield();
          overlapped = second_started;
        },
        [&] { second_started = true; });
    CHECK(overlapped);
  }
  CHECK_THROWS_WITH_AS(kernels::run_two([] {}, [] { throw std::runtime_error("second failed"); }), "second failed",
                       std::runtime_error);
  CHECK_THROWS_WITH_AS(kernels::run_two([] { throw std::runtime_error("first failed"); }, [] {}), "first failed",
                       std::runtime_error);
  // Inside a chunk, or with one thread: both on the caller, in order.
  Threads one(1);
  std::vector<int> order;
  kernels::run_two([&] { order.push_back(0); }, [&] { order.push_back(1); });
  CHECK(order == std::vector<int>{0, 1});
  CHECK(std::this_thread::get_id() == me);
}

TEST_CASE("beside: runs only where it pays — at 2 threads, not 1, nor 3 and more") {
  for (int n : {1, 2, 3, 4, 16}) {
    Threads threads(n);
    CAPTURE(n);
    CHECK(detail::beside_pays() == (n == 2));
    Generator gen(1);
    Recurrent r = GRU(3, 4, {}, {.bidirectional = true}, gen);
    Tape tape;
    Tensor y = r(Tensor::uniform({3, 3, 2}, -1, 1, gen));
    CHECK(entries_named(tape, "layer0_reverse") == (n == 2 ? 1u : 0u));
  }
  Threads threads(2);
  Beside off(false);
  CHECK_FALSE(detail::beside_pays());
}

TEST_CASE("beside: unbatched steps, a checkpointed layer returning its last output, and bad input named as before") {
  Threads threads(2);
  Generator gen(13);
  SUBCASE("steps of shape (features,)") {
    Recurrent r = GRU(3, 4, {.dtype = float64}, {.bidirectional = true}, gen);
    Tensor seq = Tensor::uniform({5, 3}, -1, 1, gen, float64).set_requires_grad();
    auto run_once = [&](bool on) {
      Beside mode(on);
      r.zero_grad();
      seq.zero_grad();
      Tape tape;
      std::vector<Tensor> steps;
      for (std::size_t t = 0; t < 5; ++t) steps.push_back(squeeze(slice(seq, 0, t, t + 1), 0));
      Tensor y = r(steps);
      CHECK(entries_named(tape, "layer0_reverse") == (on ? 1u : 0u));
      const Tensor value = y.detach();
      backward(sum(y * y));
      return std::pair{value, seq.grad().detach()};
    };
    const auto [ya, ga] = run_once(false);
    const auto [yb, gb] = run_once(true);
    CHECK(same_bits(ya, yb));
    CHECK(max_rel_diff(gb, ga) <= 1e-13);
  }
  SUBCASE("checkpointed, last output only, two layers") {
    Recurrent r = LSTM(3, 4, {.dtype = float64},
                       {.num_layers = 2, .bidirectional = true, .return_sequences = false, .checkpoint = {.on = true}}, gen);
    Tensor seq = Tensor::uniform({6, 3, 2}, -1, 1, gen, float64).set_requires_grad();
    Tensor w = Tensor::uniform({8, 2}, -1, 1, gen, float64);
    Result a, b;
    {
      Beside off(false);
      a = run(r, seq, Tensor(), w);
    }
    {
      Beside on(true);
      b = run(r, seq, Tensor(), w);
    }
    CHECK(b.beside_entries == 2);
    check_same(b, a);
  }
  SUBCASE("a wrong dtype or initial state is refused with the same message") {
    Recurrent r = GRU(3, 4, {}, {.bidirectional = true}, gen);
    auto message = [&](bool on, auto&& f) {
      Beside mode(on);
      Tape tape;
      return message_of<Error>(f);
    };
    Tensor seq64 = Tensor::uniform({4, 3, 2}, -1, 1, gen, float64);
    auto bad_dtype = [&] { r(seq64); };
    CHECK(message(true, bad_dtype) == message(false, bad_dtype));
    CHECK_FALSE(message(true, bad_dtype).empty());
    Tensor seq = Tensor::uniform({4, 3, 2}, -1, 1, gen);
    auto bad_state = [&] { r(seq, Tensor(), {{Tensor::zeros({4, 2})}, {Tensor::zeros({5, 2})}}); };
    CHECK(message(true, bad_state) == message(false, bad_state));
    CHECK(contains(message(true, bad_state), "reverse"));
  }
}
