// Defects the previous session noticed, each pinned by a test that failed before its fix: the class
// axis of the classification losses on (time, classes, batch) logits, dropout on a one-layer Recurrent,
// the exception types load_checkpoint hands on, key names read from files printed escaped and cut,
// PyTorch weights in a bidirectional layer that merges by sum, History::final_loss of no epoch,
// gradcheck inputs that share their values, and tapes destroyed where they are still current.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cmath>
#include <functional>
#include <memory>
#include <thread>
#include <filesystem>
#include <string>
#include <vector>

#include <rewind.hpp>

#include "support.hpp"

using namespace rwd;

namespace {

#define CHECK_CONTAINS CHECK_CONTAINS_ONCE

Tensor f64(const std::vector<double>& v, const Shape& s) { return Tensor::from_vector(v, s, float64); }

// −log softmax(z)[y], summed in long double: an independent reference for one example.
double ce_ref(const std::vector<double>& z, std::size_t y) {
  long double m = z[0], s = 0;
  for (double v : z) m = std::max<long double>(m, v);
  for (double v : z) s += std::exp(static_cast<long double>(v) - m);
  return static_cast<double>(m + std::log(s) - z[y]);
}

// The mean cross-entropy of (T, C, B) logits over their (t, b) examples, labels in (t, b) order.
double ce_ref_tcb(const std::vector<double>& x, std::size_t T, std::size_t C, std::size_t B, const Indices& y) {
  double total = 0;
  for (std::size_t t = 0; t < T; ++t)
    for (std::size_t b = 0; b < B; ++b) {
      std::vector<double> z(C);
      for (std::size_t c = 0; c < C; ++c) z[c] = x[(t * C + c) * B + b];
      total += ce_ref(z, static_cast<std::size_t>(y[t * B + b]));
    }
  return total / static_cast<double>(T * B);
}

// A message that shows no raw control character and stays short, however long the key in it.
void check_tame(const std::string& msg, std::size_t most = 400) {
  for (const char c : msg) CHECK_MESSAGE(static_cast<unsigned char>(c) >= 0x20, "a raw control character in: " << msg);
  CHECK_MESSAGE(msg.size() <= most, "a message of " << msg.size() << " bytes");
}

// Runs `f` in a child process and returns what it wrote on stderr, with whether it ended by abort().
struct Death {
  bool aborted = false;
  std::string stderr_text;
};
Death run_in_child(const std::function<void()>& f) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  std::fflush(nullptr);  // nothing buffered before the fork is written twice
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(fds[1], 2);
    ::close(fds[0]);
    std::signal(SIGABRT, SIG_DFL);  // not doctest's handler: the parent reads how the child ended
    try {
      f();
    } catch (const std::exception& e) {  // never back into the test runner in the child
      std::fprintf(stderr, "threw: %s\n", e.what());
      ::_exit(1);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  Death d;
  char buf[512];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) d.stderr_text.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  d.aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
  return d;
}

}  // namespace

// ---- 1. the class axis of cross_entropy / nll_loss ----

TEST_CASE("noticed s13: cross_entropy and nll_loss default to the features axis — 1 of (time, classes, batch)") {
  Generator gen(131);
  SUBCASE("T == V: the default is axis 1, not the time axis") {
    const std::size_t T = 3, V = 3, B = 2;
    const Tensor x = Tensor::randn({T, V, B}, gen, float64);
    const Indices y = {0, 2, 1, 1, 2, 0};  // (t, b) order
    const double want = ce_ref_tcb(x.to_vector(), T, V, B, y);
    CHECK(cross_entropy(x, y).item() == doctest::Approx(want).epsilon(1e-14));
    CHECK(nll_loss(log_softmax(x, 1), y).item() == doctest::Approx(want).epsilon(1e-14));
    // Probability targets too: one-hot along axis 1 gives the same.
    std::vector<double> t(T * V * B, 0.0);
    for (std::size_t k = 0; k < T * B; ++k) t[((k / B) * V + static_cast<std::size_t>(y[k])) * B + k % B] = 1;
    CHECK(cross_entropy(x, f64(t, {T, V, B})).item() == doctest::Approx(want).epsilon(1e-14));
  }
  SUBCASE("T != V: the default works (it was a ShapeError)") {
    const Tensor x = Tensor::randn({2, 4, 3}, gen, float64);
    const Indices y = {3, 0, 1, 2, 2, 0};
    CHECK(cross_entropy(x, y).item() == doctest::Approx(ce_ref_tcb(x.to_vector(), 2, 4, 3, y)).epsilon(1e-14));
  }
  SUBCASE("an explicit axis still means that axis, 0 included") {
    const Tensor x = Tensor::randn({3, 2, 2}, gen, float64);  // (classes 3, time 2, batch 2)
    const Indices y = {2, 0, 1, 1};
    ClassLossOptions o;
    o.axis = 0;
    const double by_axis0 = cross_entropy(x, y, o).item();
    // Moved to (time, classes, batch), the default takes the same examples.
    CHECK(by_axis0 == doctest::Approx(cross_entropy(permute(x, {1, 0, 2}), y).item()).epsilon(1e-14));
    CHECK(nll_loss(log_softmax(x, 0), y, {.axis = 0}).item() == doctest::Approx(by_axis0).epsilon(1e-14));
    CHECK(cross_entropy(x, Indices{0, 1, 1, 0, 1, 0}, {.axis = -1}).item() > 0);  // (3, 2) examples over axis 2
  }
  SUBCASE("1-D and 2-D logits keep axis 0") {
    const Tensor x = Tensor::randn({4, 3}, gen, float64);
    const Indices y = {3, 0, 2};
    CHECK(cross_entropy(x, y).item() == cross_entropy(x, y, {.axis = 0}).item());
    CHECK(cross_entropy(f64({1, 2, 3}, {3}), Indices{2}).item() == doctest::Approx(ce_ref({1, 2, 3}, 2)));
  }
  SUBCASE("4-D logits have no default: a ShapeError asks for the axis") {
    const Tensor x = Tensor::randn({2, 3, 2, 2}, gen, float64);
    const std::string msg = message_of<ShapeError>([&] { cross_entropy(x, Indices(8, 0)); });
    CHECK_CONTAINS(msg, "cross_entropy");
    CHECK_CONTAINS(msg, "(2, 3, 2, 2)");
    CHECK_CONTAINS(msg, "axis");
    CHECK_CONTAINS(message_of<ShapeError>([&] { nll_loss(x, Indices(8, 0)); }), "nll_loss");
    CHECK_CONTAINS(message_of<ShapeError>([&] { cross_entropy(x, Tensor::zeros({2, 3, 2, 2}, float64)); }), "axis");
    CHECK(cross_entropy(x, Indices(8, 0), {.axis = 1}).item() > 0);
  }
}

// ---- 2. dropout between the layers of a one-layer Recurrent ----

TEST_CASE("noticed s13: a one-layer Recurrent refuses `dropout` (between stacked layers it would do nothing)") {
  Generator gen(132);
  const std::string msg = message_of<ValueError>([&] { LSTM(2, 3, {}, {.dropout = 0.5}, gen); });
  CHECK_CONTAINS(msg, "LSTM(2 => 3)");
  CHECK_CONTAINS(msg, "dropout");
  CHECK_CONTAINS(msg, "input_dropout");
  CHECK_CONTAINS(msg, "recurrent_dropout");
  CHECK_CONTAINS(message_of<ValueError>([&] { GRU(2, 3, {}, {.bidirectional = true, .dropout = 0.2}, gen); }),
                 "GRU(2 => 3, bidirectional)");
  CHECK_CONTAINS(message_of<ValueError>([&] {
                   Recurrent(std::vector<std::shared_ptr<Cell>>{std::make_shared<RNNCell>(2, 3, "tanh", CellOptions{}, gen)},
                             {.dropout = 0.1}, gen);
                 }),
                 "dropout");
  // What does act is accepted: dropout between two layers, variational dropout inside one, dropout 0.
  CHECK(LSTM(2, 3, {}, {.num_layers = 2, .dropout = 0.5}, gen).repr() == "LSTM(2 => 3, layers=2, dropout=0.5)");
  CHECK_NOTHROW(LSTM(2, 3, {}, {.input_dropout = 0.5, .recurrent_dropout = 0.5}, gen));
  CHECK_NOTHROW(LSTM(2, 3, {}, {.dropout = 0.0}, gen));
}

// ---- 3. load_checkpoint's exception types ----

TEST_CASE("noticed s13: load_checkpoint keeps the exception type of what failed, and adds the file") {
  TempDir dir("rewind-noticed-s13");
  Generator gen(133);
  Dense model(2, 3, {}, true, float32, gen);
  Adam opt(model.parameters());
  for (Tensor p : opt.params()) p.set_grad(Tensor::ones(p.shape()));
  opt.step();
  const std::string file = dir / "ckpt.npz";
  save_checkpoint(file, model, opt);

  Dense wider(2, 4, {}, true, float32, gen);
  Adam wider_opt(wider.parameters());
  std::string msg = message_of<ShapeError>([&] { load_checkpoint(file, wider, wider_opt); });
  CHECK_CONTAINS(msg, file);
  CHECK_CONTAINS(msg, "model part");
  CHECK_CONTAINS(msg, "'weight'");

  Dense wide64(2, 3, {}, true, float64, gen);
  Adam opt64(wide64.parameters());
  msg = message_of<DtypeError>([&] { load_checkpoint(file, wide64, opt64); });
  CHECK_CONTAINS(msg, file);
  CHECK_CONTAINS(msg, "float32");

  // The optimizer part: a state tensor of the wrong shape is a ShapeError, and the model is put back.
  NamedTensors all;
  for (auto& [k, t] : model.state_dict()) all.emplace_back("model/" + k, Tensor::full(t.shape(), 0.5));
  all.emplace_back("optim/step", Tensor::scalar(1, float64));
  all.emplace_back("optim/lr", Tensor::scalar(0.001, float64));
  for (const char* i : {"0", "1"}) {
    all.emplace_back(std::string("optim/") + i + ".step", Tensor::scalar(1, float64));
    all.emplace_back(std::string("optim/") + i + ".exp_avg", Tensor::zeros({7}));  // wrong: neither's shape
    all.emplace_back(std::string("optim/") + i + ".exp_avg_sq", Tensor::zeros({7}));
  }
  const std::string bad = dir / "bad_optim.npz";
  save_npz(bad, all);
  const std::vector<double> before = model.parameters()[0].to_vector();
  msg = message_of<ShapeError>([&] { load_checkpoint(bad, model, opt); });
  CHECK_CONTAINS(msg, bad);
  CHECK_CONTAINS(msg, "optimizer part");
  CHECK(model.parameters()[0].to_vector() == before);
  // A key problem stays a ValueError (checked before the shapes).
  all.pop_back();  // 1.exp_avg_sq
  save_npz(bad, all);
  CHECK_CONTAINS(message_of<ValueError>([&] { load_checkpoint(bad, model, opt); }), "optimizer part");
}

// ---- 4. key names read from files, in messages ----

TEST_CASE("noticed s13: keys from files are printed escaped and cut in load_state_dict, optimizer and torch messages") {
  TempDir dir("rewind-noticed-s13");
  Generator gen(134);
  const std::string evil = "x\nload_state_dict: all good\r\x01" + std::string(20000, 'k');
  const std::string quote = "q', 'r\\x0a";

  Dense model(2, 1, {}, true, float64, gen);
  NamedTensors state = model.state_dict();
  state.emplace_back(evil, Tensor::zeros({1}, float64));
  std::string msg = message_of<ValueError>([&] { model.load_state_dict(state); });
  check_tame(msg);
  CHECK_CONTAINS(msg, "unexpected key 'x\\x0aload_state_dict: all good\\x0d\\x01kk");
  CHECK_CONTAINS(msg, "kkk' (20029 bytes)");  // both ends of a long key, and its length
  // A quote or a backslash in a key cannot pass for the end of the key or for an escape.
  state.back().first = quote;
  CHECK_CONTAINS(message_of<ValueError>([&] { model.load_state_dict(state); }), "unexpected key 'q\\', \\'r\\\\x0a'");
  // Twice, and holding an undefined tensor.
  state.back() = {evil, Tensor()};
  check_tame(message_of<ValueError>([&] { model.load_state_dict(state); }));
  state = model.state_dict();
  state.push_back(state.front());
  state.back().first = state.front().first = evil;
  check_tame(message_of<ValueError>([&] { model.load_state_dict(state); }));

  // Through a file: save_npz takes a newline in a key (libzip refuses \x01).
  const std::string file = dir / "evil.npz";
  const std::string evil_file = "x\nload_state_dict: all good\r" + std::string(20000, 'k');
  state = model.state_dict();
  state.emplace_back(evil_file, Tensor::zeros({1}, float64));
  save_npz(file, state);
  msg = message_of<ValueError>([&] { load(model, file); });
  check_tame(msg, 400 + file.size());
  CHECK_CONTAINS(msg, "x\\x0aload_state_dict");

  // An optimizer's state from a checkpoint.
  SGD sgd(model.parameters(), {.lr = 0.1, .momentum = 0.9});
  StateDict os = sgd.state_dict();
  os.emplace_back(evil, Tensor::zeros({1}, float64));
  msg = message_of<ValueError>([&] { sgd.load_state_dict(os); });
  check_tame(msg, 600);
  CHECK_CONTAINS(msg, "unexpected key 'x\\x0a");

  // load_torch, from a state_dict and from a file.
  Recurrent rnn = GRU(2, 3, {.dtype = float64}, {}, gen);
  NamedTensors sd = torch_keys(rnn);
  sd.emplace_back(evil, Tensor::zeros({1}, float64));
  msg = message_of<ValueError>([&] { load_torch(rnn, sd); });
  check_tame(msg);
  CHECK_CONTAINS(msg, "unexpected key 'x\\x0a");
  const std::string torch_file = dir / "torch.npz";
  sd.back().first = evil_file;
  save_npz(torch_file, sd);
  msg = message_of<ValueError>([&] { load_torch(rnn, torch_file); });
  check_tame(msg, 400 + torch_file.size());
  sd.pop_back();
  sd.front().first = evil;  // the missing key is weight_ih_l0; the model takes no `evil`
  msg = message_of<ValueError>([&] { load_torch(rnn, sd, "", TorchKeys::exact); });
  check_tame(msg);
  msg = message_of<ValueError>([&] { load_torch(rnn, sd, evil, TorchKeys::exact); });  // a prefix from a file too
  check_tame(msg, 1000);  // four missing keys, each the prefix and a name, cut

  // load_npz's own messages use the same rule (its keys are in double quotes).
  msg = message_of<IOError>([&] { load_npz(file, {evil}); });
  check_tame(msg, 2000 + file.size());
  CHECK_CONTAINS(msg, "key \"x\\x0aload_state_dict: all good\\x0d\\x01kk");
  check_tame(message_of<IOError>([&] { load_npz(torch_file, {"absent"}); }), 400 + torch_file.size());
}

// ---- 5. PyTorch weights in a bidirectional layer that merges by sum ----

TEST_CASE("noticed s13: load_torch into a Merge::sum bidirectional layer computes PyTorch's two halves summed") {
  // The weights do not depend on the merge: nn.GRU(3, 4, bidirectional=True)'s output (T, 2H, B) with
  // its halves added by hand is what the rewind layer with Merge::sum computes.
  const NamedTensors raw = load_npz((test_ref_dir() / "torch_gru_bidir.npz").string());
  auto get = [&](const std::string& key) {
    for (const auto& [k, t] : raw)
      if (k == key) return t;
    FAIL("reference lacks " << key);
    return Tensor();
  };
  Recurrent m = GRU(3, 4, {.dtype = float64}, {.bidirectional = true, .merge = Merge::sum});
  load_torch(m, raw, "state.", TorchKeys::ignore_unexpected);
  const Tensor h0 = get("h0"), out = get("out");
  const std::vector<State> initial = {State{squeeze(slice(h0, 0, 0, 1), 0)}, State{squeeze(slice(h0, 0, 1, 2), 0)}};
  const Tensor got = stack_steps(m.run(split_steps(get("x")), {}, initial).outputs);
  const Tensor want = slice(out, 1, 0, 4) + slice(out, 1, 4, 8);
  REQUIRE(got.shape() == want.shape());
  const std::vector<double> g = got.to_vector(), w = want.to_vector();
  for (std::size_t i = 0; i < g.size(); ++i) CHECK_MESSAGE(std::abs(g[i] - w[i]) <= 1e-5, "element " << i);

  // Stacked, a sum-merged layer's upper layers take H features where PyTorch's take 2H: refused by key.
  const NamedTensors lstm = load_npz((test_ref_dir() / "torch_lstm_bidir.npz").string());
  Recurrent two = LSTM(3, 4, {.dtype = float64}, {.num_layers = 2, .bidirectional = true, .merge = Merge::sum});
  const std::string msg = message_of<ShapeError>([&] { load_torch(two, lstm, "state.", TorchKeys::ignore_unexpected); });
  CHECK_CONTAINS(msg, "weight_ih_l1");
  CHECK_CONTAINS(msg, "Merge::sum");
}

// ---- 6. History of no epoch ----

TEST_CASE("noticed s13: History::final_loss of a history with no epoch is a ValueError, not a loss of 0") {
  History empty;
  CHECK_CONTAINS(message_of<ValueError>([&] { (void)empty.final_loss(); }), "final_loss");
  Tensor w = Tensor::scalar(1.0, float64).set_requires_grad();
  SGD opt({w}, {.lr = 0.25});
  const History none = fit(opt, 1, [&](std::size_t, std::size_t) { return w * w; }, {.epochs = 2, .initial_epoch = 2});
  CHECK(none.epochs.empty());
  CHECK_THROWS_AS((void)none.final_loss(), ValueError);
  const History one = fit(opt, 1, [&](std::size_t, std::size_t) { return w * w; }, {.epochs = 1});
  CHECK(one.final_loss() == 1.0);
}

// ---- 7. gradcheck inputs that share values ----

TEST_CASE("noticed s13: gradcheck refuses inputs whose values overlap (one nudge would move both)") {
  Tensor x = f64({0.3, -0.7, 1.1, 0.4}, {4}).set_requires_grad().set_name("x");
  Tensor head;
  {
    NoGradGuard ng;
    head = slice(x, 0, 0, 2);  // a leaf view of x's first two values
  }
  REQUIRE(head.shares_storage(x));
  head.set_requires_grad();
  const Tensor w = f64({0.5, -1.5, 2.0, 0.25}, {4});
  auto f = [&](const std::vector<Tensor>& in) { return sum(in[0] * w) + sum(in[1] * in[1]); };
  const std::string msg = message_of<ValueError>([&] { gradcheck(f, {x, head}); });
  CHECK_CONTAINS(msg, "gradcheck");
  CHECK_CONTAINS(msg, "inputs 0 and 1");
  // Held fixed, it still moves with x: refused too.
  head.set_requires_grad(false);
  CHECK_CONTAINS(message_of<ValueError>([&] { gradcheck(f, {x, head}); }), "inputs 0 and 1");
  // Views of one storage that do not overlap are independent: checked, and right.
  Tensor tail;
  {
    NoGradGuard ng;
    tail = slice(x, 0, 2, 4);
  }
  head.set_requires_grad();
  tail.set_requires_grad();
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return sum(in[0] * in[1]); }, {head, tail}).ok());
  // The same tensor twice is one variable, its gradient the total: allowed as before.
  CHECK(gradcheck([&](const std::vector<Tensor>& in) { return sum(in[0] * w) + sum(in[1] * in[1]); }, {x, x}).ok());
}

// ---- 8. a tape destroyed where it is still current ----

TEST_CASE("noticed s13: a Tape destroyed inside a CurrentTape scope leaves no dangling current tape") {
  Tape& outer = Tape::current();
  Tensor x = f64({0.5, -1.5}, {2}).set_requires_grad();
  SUBCASE("the scope's own tape, made current by a Tape") {
    auto t = std::make_unique<Tape>();
    {
      CurrentTape scope(*t);
      t.reset();
      CHECK(&Tape::current() == &outer);
      const Tensor y = sum(x * x);  // records on the tape that is current now, not on freed memory
      CHECK(y.tape_index() >= 0);
    }
    CHECK(&Tape::current() == &outer);
  }
  SUBCASE("a detached tape") {
    auto d = Tape::make_detached();
    {
      CurrentTape scope(*d);
      d.reset();
      CHECK(&Tape::current() == &outer);
    }
    CHECK(&Tape::current() == &outer);
  }
  SUBCASE("the tape the scope replaced") {
    auto t = std::make_unique<Tape>();
    auto other = Tape::make_detached();
    {
      CurrentTape scope(*other);
      t.reset();
      CHECK(&Tape::current() == other.get());
    }
    CHECK(&Tape::current() == &outer);
  }
  SUBCASE("scopes and tapes ended out of order") {
    auto a = std::make_unique<Tape>();
    auto scope = std::make_unique<CurrentTape>(outer);
    auto b = std::make_unique<Tape>();
    CHECK(&Tape::current() == b.get());
    scope.reset();  // its tape (outer) was not the current one: b stays
    CHECK(&Tape::current() == b.get());
    b.reset();
    CHECK(&Tape::current() == a.get());
    a.reset();
    CHECK(&Tape::current() == &outer);
  }
  CHECK(&Tape::current() == &outer);
  const Tensor z = sum(x * x);
  CHECK(z.tape_index() >= 0);
}

TEST_CASE("noticed s13: a Tape destroyed on another thread, or by a hook during its own sweep, is refused by abort()") {
  // Either would leave freed memory in use — the other thread's current tape, the sweep's entries —
  // and no exception can leave a destructor: the process stops with a message naming the misuse.
  const Death other_thread = run_in_child([] {
    auto t = std::make_unique<Tape>();  // current on this thread
    std::thread([&] { t.reset(); }).join();
  });
  CHECK(other_thread.aborted);
  CHECK_CONTAINS(other_thread.stderr_text, "Tape");
  CHECK_CONTAINS(other_thread.stderr_text, "another thread");

  const Death in_sweep = run_in_child([] {
    auto t = std::make_unique<Tape>();
    Tensor w = Tensor::from_vector(std::vector<double>{1, 2}, {2}, float64).set_requires_grad();
    GradReadyHook hook([&](const Tensor&) { t.reset(); });
    sum(w * w).backward();
  });
  CHECK(in_sweep.aborted);
  CHECK_CONTAINS(in_sweep.stderr_text, "sweep");

  // Made and destroyed on one thread, handed over as a detached tape, or outliving the thread that made
  // it (its thread gone, nothing there can use it): fine.
  const Death fine = run_in_child([] {
    std::unique_ptr<Tape> t;
    std::thread([&] { t = std::make_unique<Tape>(); }).join();
    t.reset();
    auto d = Tape::make_detached();
    std::thread([&] {
      CurrentTape on(*d);
      Tensor w = Tensor::from_vector(std::vector<double>{1, 2}, {2}, float64).set_requires_grad();
      (void)sum(w * w);
    }).join();
    d.reset();
  });
  CHECK_FALSE(fine.aborted);
  CHECK(fine.stderr_text.empty());
}
