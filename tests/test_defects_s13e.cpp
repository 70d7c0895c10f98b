// Session 13 audit, helper e: defects in the gradient-ready hook, npz keys, serialize's load errors and
// fit with a DataParallel. Each test failed on the code before its fix.
#include <doctest/doctest.h>

#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <rewind.hpp>

#include "support.hpp"

using namespace rwd;

namespace {

Tensor leaf(const std::vector<double>& v) {
  return Tensor::from_vector(v, {v.size()}, float64).set_requires_grad();
}


// A fresh directory for one test's files.
std::filesystem::path scratch(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("rewind_s13e_" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::size_t files_in(const std::filesystem::path& dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}

// y = W·x: one parameter, a fixed input; with `fail`, the sweep throws once (a custom op's backward).
struct Tiny : Module {
  Tensor W;
  Tiny() { W = register_parameter("W", Tensor::from_vector(std::vector<double>{1, 2, 3, 4}, {2, 2}, float64)); }
  std::string repr() const override { return "Tiny"; }
  Tensor loss(bool* fail = nullptr) const {
    const Tensor x = Tensor::from_vector(std::vector<double>{0.5, -1}, {2, 1}, float64);
    const Tensor c = Tensor::from_vector(std::vector<double>{1, -2}, {2, 1}, float64);
    Tensor y = matmul(W, x);
    if (fail)
      y = custom_op(
          "fails_once", {y}, [](const std::vector<Tensor>& in) { return in[0] * 1.0; },
          [fail](BackwardContext& ctx) {
            if (*fail) {
              *fail = false;
              throw ValueError("fails_once: the backward failed");
            }
            ctx.accumulate(0, ctx.grad_out());
          });
    return sum(c * y);
  }
};

}  // namespace

// ---- 1. a GradReadyHook destroyed on another thread ----

TEST_CASE("defects s13e: a gradient-ready hook destroyed on another thread no longer runs on its own") {
  Tensor x = leaf({1, 2});
  Tensor w = leaf({3, 4});
  int mine = 0, theirs = 0;
  std::optional<GradReadyHook> hook;
  hook.emplace([&](const Tensor&) { ++mine; });
  backward(sum(x * w));
  CHECK(mine == 2);
  std::thread other([&] {
    // The other thread has a hook of its own: destroying ours there must leave its list alone.
    GradReadyHook own([&](const Tensor&) { ++theirs; });
    hook.reset();
    Tensor a = leaf({1, 2});
    backward(sum(a * a));
  });
  other.join();
  CHECK(theirs == 1);
  backward(sum(x * w));
  CHECK(mine == 2);  // unregistered from the thread that registered it
}

TEST_CASE("defects s13e: a gradient-ready hook outliving the thread that registered it can be destroyed") {
  std::optional<GradReadyHook> hook;
  int calls = 0;
  std::thread maker([&] {
    hook.emplace([&](const Tensor&) { ++calls; });
    Tensor a = leaf({1, 2});
    backward(sum(a * a));
  });
  maker.join();
  CHECK(calls == 1);
  hook.reset();  // its thread's list is gone with the thread
  Tensor x = leaf({1, 2});
  backward(sum(x * x));
  CHECK(calls == 1);
}

// ---- 2. npz keys with control bytes ----

TEST_CASE("defects s13e: save_npz refuses a key with a control byte before touching the file") {
  const auto dir = scratch("npz_control");
  const std::string path = (dir / "m.npz").string();
  const Tensor t = Tensor::from_vector(std::vector<double>{1, 2, 3}, {3}, float64);
  save_npz(path, {{"good", t}});
  const std::string msg = message_of<ValueError>([&] { save_npz(path, {{"x", t}, {"a\x01" "b", t}}); });
  CHECK(msg.find("\"a\\x01b\"") != std::string::npos);  // the key, as quote_key shows it
  CHECK(msg.find("control byte") != std::string::npos);
  const NamedTensors back = load_npz(path);  // the file as it was
  REQUIRE(back.size() == 1);
  CHECK(back[0].first == "good");
  CHECK(files_in(dir) == 1);  // no temporary left behind
  // Every byte below 0x20 is refused up front or comes back as written: none fails in libzip.
  for (int c = 1; c < 0x20; ++c) {
    const std::string key = std::string("k") + static_cast<char>(c);
    CAPTURE(c);
    bool refused = false;
    try {
      save_npz(path, {{key, t}});
    } catch (const ValueError&) {
      refused = true;
    }
    CHECK(refused == (c != '\t' && c != '\n' && c != '\r'));
    const NamedTensors now = load_npz(path);
    REQUIRE(now.size() == 1);
    CHECK(now[0].first == (refused ? std::string("good") : key));
    if (!refused) save_npz(path, {{"good", t}});
  }
  std::filesystem::remove_all(dir);
}

// ---- 3. load() keeps every rwd exception type and adds the path ----

namespace {
// A module whose parameter is a tape value released by a clear: loading into it is a TapeError.
struct Hollow : Module {
  Tensor w;
  Hollow() {
    Tape tape;
    const Tensor x = leaf({1, 2});
    w = register_parameter("w", x * 2.0);
    tape.clear();
  }
  std::string repr() const override { return "Hollow"; }
};
}  // namespace

TEST_CASE("defects s13e: load() adds the path to a TapeError and keeps its type") {
  const auto dir = scratch("load_tape");
  const std::string path = (dir / "w.npz").string();
  save_npz(path, {{"w", Tensor::from_vector(std::vector<double>{5, 6}, {2}, float64)}});
  Hollow m;
  const std::string msg = message_of<TapeError>([&] { load(m, path); });
  CHECK(msg.rfind(path + ": ", 0) == 0);
  std::filesystem::remove_all(dir);
}

// ---- 4. fit with a DataParallel after a backward() that threw ----

TEST_CASE("defects s13e: fit leaves a DataParallel usable after its backward threw") {
  Tiny m;
  SGD opt(m.parameters(), {.lr = 0.1});
  SelfCommunicator self;
  DataParallel ddp(m, opt, self);
  bool fail = true;
  CHECK_THROWS_AS(fit(opt, 2, [&](std::size_t, std::size_t) { return m.loss(&fail); }, {.epochs = 1, .parallel = &ddp}),
                  ValueError);
  CHECK_FALSE(fail);  // it was the sweep that threw
  // A loss function that throws (before the step begins) leaves it usable too.
  CHECK_THROWS_AS(fit(opt, 1, [&](std::size_t, std::size_t) -> Tensor { throw IOError("no batch"); },
                      {.epochs = 1, .parallel = &ddp}),
                  IOError);
  // The next fit trains: W −= lr · c xᵀ once per batch (c xᵀ = [[0.5, −1], [−1, 2]]).
  const History h = fit(opt, 1, [&](std::size_t, std::size_t) { return m.loss(); }, {.epochs = 1, .parallel = &ddp});
  CHECK(h.epochs.size() == 1);
  const std::vector<double> w = m.W.to_vector();
  CHECK(w[0] == doctest::Approx(1 - 0.05));
  CHECK(w[1] == doctest::Approx(2 + 0.1));
  CHECK(w[2] == doctest::Approx(3 + 0.1));
  CHECK(w[3] == doctest::Approx(4 - 0.2));
}

TEST_CASE("defects s13e: train_truncated leaves a DataParallel usable after its backward threw") {
  Tiny m;
  SGD opt(m.parameters(), {.lr = 0.1});
  SelfCommunicator self;
  DataParallel ddp(m, opt, self);
  bool fail = true;
  CHECK_THROWS_AS(train_truncated(m, opt, 2, [&](std::size_t) { return m.loss(&fail); }, {.k1 = 1, .parallel = &ddp}),
                  ValueError);
  CHECK_FALSE(fail);
  CHECK_NOTHROW(train_truncated(m, opt, 2, [&](std::size_t) { return m.loss(); }, {.k1 = 1, .parallel = &ddp}));
  // And by hand: abandon_step ends an open step, so the next begins.
  ddp.begin_step();
  ddp.abandon_step();
  ddp.abandon_step();  // (nothing open: nothing to do)
  ddp.begin_step();
  m.loss().backward();
  CHECK_NOTHROW(ddp.synchronize());
}
