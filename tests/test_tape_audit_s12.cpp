// Audit of the tape's features and the core Tensor API against hostile input (issue 12): checkpoint,
// gradient-ready hooks, retain and seeds, grad(), nested tapes, the teaching views, gradcheck's
// options and the Tensor factories, accessors and views. Each case is a probe that failed (a crash,
// a silent wrong number, an unclear error) before its fix, or guards a rule the audit checked.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <rewind.hpp>

using namespace rwd;

namespace {
const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

Tensor leaf64(std::vector<double> v, Shape s) {
  Tensor t = Tensor::from_vector(v, s, Dtype::f64);
  t.set_requires_grad();
  return t;
}
}  // namespace

TEST_CASE("tape audit: gradcheck refuses an eps or tolerance that cannot give a verdict") {
  Tensor x = leaf64({0.3, -0.7}, {2});
  auto f = [](const std::vector<Tensor>& in) { return sum(tanh(in[0])); };
  for (double eps : {0.0, -1e-6, kNaN, kInf}) {
    CAPTURE(eps);
    GradcheckOptions o;
    o.eps = eps;
    CHECK_THROWS_AS(gradcheck(f, {x}, o), ValueError);
    CHECK_THROWS_AS(gradgradcheck(f, {x}, o), ValueError);
  }
  for (double tol : {-1.0, kNaN}) {
    CAPTURE(tol);
    GradcheckOptions a, r, fa, fr;
    a.atol = tol;
    r.rtol = tol;
    fa.float32_atol = tol;
    fr.float32_rtol = tol;
    CHECK_THROWS_AS(gradcheck(f, {x}, a), ValueError);
    CHECK_THROWS_AS(gradcheck(f, {x}, r), ValueError);
    CHECK_THROWS_AS(gradcheck(f, {x}, fa), ValueError);
    CHECK_THROWS_AS(gradcheck(f, {x}, fr), ValueError);
  }
  CHECK(gradcheck(f, {x}));  // the defaults still pass
}

TEST_CASE("tape audit: gradgradcheck with no input taking a gradient is a ValueError") {
  Tensor x = Tensor::from_vector({0.3, -0.7}, {2}, Dtype::f64);
  auto f = [](const std::vector<Tensor>& in) { return sum(tanh(in[0])); };
  CHECK_THROWS_AS(gradgradcheck(f, {x}), ValueError);
}

TEST_CASE("tape audit: gradcheck of a function that returns an undefined tensor names gradcheck") {
  Tensor x = leaf64({0.3, -0.7}, {2});
  auto f = [](const std::vector<Tensor>&) { return Tensor(); };
  try {
    gradcheck(f, {x});
    FAIL("no throw");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("gradcheck") != std::string::npos);
  }
}

TEST_CASE("tape audit: gradcheck of a function that throws restores float32 inputs") {
  Tensor x = Tensor::from_vector({0.3, -0.7}, {2});
  x.set_requires_grad();
  int calls = 0;
  auto f = [&](const std::vector<Tensor>& in) {
    if (++calls > 1) throw ValueError("boom");
    return sum(tanh(in[0]));
  };
  CHECK_THROWS_AS(gradcheck(f, {x}), ValueError);
  CHECK(x.dtype() == Dtype::f32);
  CHECK(x.to_vector()[0] == doctest::Approx(0.3));
}

TEST_CASE("tape audit: backward seeds of the wrong shape or dtype, twice without retain, a leaf root") {
  Tensor x = leaf64({1, 2, 3}, {3});
  {
    Tensor y = x * x;
    CHECK_THROWS_AS(backward(y), TapeError);
    CHECK_THROWS_AS(backward(y, Tensor::ones({2}, Dtype::f64)), ShapeError);
    CHECK_THROWS_AS(backward(y, Tensor::ones({3}, Dtype::f32)), DtypeError);
    CHECK_THROWS_AS(backward(y, Tensor::ones({3, 1}, Dtype::f64)), ShapeError);
    backward(y, Tensor::ones({3}, Dtype::f64));
    CHECK_THROWS_AS(backward(y, Tensor::ones({3}, Dtype::f64)), TapeError);
  }
  x.zero_grad(true);
  backward(sum(x));
  CHECK(x.grad().to_vector() == std::vector<double>{1, 1, 1});
  Tensor s = Tensor::scalar(2.0, Dtype::f64).set_requires_grad();
  backward(s);  // a leaf root: its own gradient is 1
  CHECK(s.grad().item() == 1.0);
  Tensor c = Tensor::scalar(2.0, Dtype::f64);
  CHECK_THROWS(backward(c));  // nothing takes a gradient
}

TEST_CASE("tape audit: a tensor from a destroyed Tape scope") {
  Tensor x = leaf64({1, 2}, {2});
  Tensor y;
  {
    Tape t;
    y = sum(x * x);
  }
  CHECK_THROWS_AS(backward(y), TapeError);
  CHECK_THROWS_AS(y.item(), TapeError);
  CHECK_THROWS_AS(y.detach(), TapeError);
  CHECK(y.str().find("released") != std::string::npos);
}

TEST_CASE("tape audit: tensors crossing live tapes are a TapeError") {
  Tensor x = leaf64({1, 2}, {2});
  Tensor y = x * 2.0;
  {
    Tape inner;
    CHECK_THROWS_AS(y * 3.0, TapeError);
  }
}

TEST_CASE("tape audit: grad with allow_unused and inputs not taking a gradient") {
  Tape tape;
  Tensor x = leaf64({1, 2}, {2});
  Tensor u = leaf64({5}, {1});
  Tensor c = Tensor::from_vector({1, 1}, {2}, Dtype::f64);
  Tensor y = sum(x * x);
  CHECK_THROWS_AS(grad({y}, {x, u}, {}, {.retain = true}), TapeError);
  auto g = grad({y}, {x, u}, {}, {.retain = true}, true);
  REQUIRE(g.size() == 2);
  CHECK(g[0].to_vector() == std::vector<double>{2, 4});
  CHECK(!g[1].defined());
  CHECK_THROWS_AS(grad({y}, {c}, {}, {.retain = true}), TapeError);
  CHECK_THROWS_AS(grad({y}, {Tensor()}, {}, {.retain = true}, true), TapeError);
  CHECK_THROWS_AS(grad({y}, {x}, {Tensor::ones({2}, Dtype::f64)}, {.retain = true}), ShapeError);
}

TEST_CASE("tape audit: NoGradGuard and EnableGradGuard nest and restore") {
  CHECK(GradMode::enabled());
  {
    NoGradGuard a;
    {
      EnableGradGuard b;
      {
        NoGradGuard c;
        CHECK(!GradMode::enabled());
      }
      CHECK(GradMode::enabled());
    }
    CHECK(!GradMode::enabled());
  }
  CHECK(GradMode::enabled());
}

TEST_CASE("tape audit: checkpoint returning its input, a view of it, and throwing") {
  Tensor x = leaf64({0.5, -0.25, 1.5, 2}, {2, 2});
  SUBCASE("input returned as is") {
    auto out = checkpoint([](const std::vector<Tensor>& in) { return std::vector<Tensor>{in[0], tanh(in[0])}; }, {x});
    CHECK(out[0].same(x));
    backward(sum(out[0] * out[1]));
    Tensor y = x.detach();
    std::vector<double> want;
    for (double v : y.to_vector()) want.push_back(std::tanh(v) + v * (1 - std::tanh(v) * std::tanh(v)));
    auto got = x.grad().to_vector();
    for (std::size_t i = 0; i < 4; ++i) CHECK(got[i] == doctest::Approx(want[i]));
  }
  SUBCASE("a view of the input") {
    auto out = checkpoint([](const std::vector<Tensor>& in) { return std::vector<Tensor>{reshape(in[0], {4})}; }, {x});
    Tensor w = Tensor::from_vector({1, 2, 3, 4}, {4}, Dtype::f64);
    backward(sum(out[0] * w));
    CHECK(x.grad().to_vector() == std::vector<double>{1, 2, 3, 4});
  }
  SUBCASE("a function that throws in the re-run") {
    int runs = 0;
    auto out = checkpoint(
        [&](const std::vector<Tensor>& in) {
          if (++runs == 2) throw ValueError("second run");
          return std::vector<Tensor>{tanh(in[0])};
        },
        {x});
    CHECK_THROWS_AS(backward(sum(out[0])), ValueError);
    // the tape is usable afterwards
    Tape::current().clear();
    backward(sum(x * x));
  }
  SUBCASE("a non-deterministic function") {
    int runs = 0;
    auto out = checkpoint(
        [&](const std::vector<Tensor>& in) { return std::vector<Tensor>{in[0] * static_cast<double>(++runs)}; }, {x});
    CHECK_THROWS_AS(backward(sum(out[0])), TapeError);
  }
  SUBCASE("returning a different count in the re-run") {
    int runs = 0;
    auto out = checkpoint(
        [&](const std::vector<Tensor>& in) {
          std::vector<Tensor> r{tanh(in[0])};
          if (++runs == 2) r.push_back(in[0]);
          return r;
        },
        {x});
    CHECK_THROWS_AS(backward(sum(out[0])), TapeError);
  }
  SUBCASE("returning a different shape in the re-run") {
    int runs = 0;
    auto out = checkpoint(
        [&](const std::vector<Tensor>& in) {
          return std::vector<Tensor>{++runs == 2 ? reshape(tanh(in[0]), {4}) : tanh(in[0])};
        },
        {x});
    CHECK_THROWS_AS(backward(sum(out[0])), Error);
  }
  SUBCASE("returning a constant in the re-run") {
    int runs = 0;
    auto out = checkpoint(
        [&](const std::vector<Tensor>& in) {
          return std::vector<Tensor>{++runs == 2 ? tanh(in[0].detach()) : tanh(in[0])};
        },
        {x});
    CHECK_THROWS_AS(backward(sum(out[0])), Error);
  }
  SUBCASE("nested checkpoints") {
    auto inner = [](const std::vector<Tensor>& in) { return std::vector<Tensor>{tanh(in[0]) * in[0]}; };
    auto out = checkpoint(
        [&](const std::vector<Tensor>& in) { return checkpoint(inner, {in[0] * 2.0}); }, {x});
    backward(sum(out[0]));
    auto got = x.grad().to_vector();
    auto xs = x.to_vector();
    for (std::size_t i = 0; i < 4; ++i) {
      const double u = 2 * xs[i], t = std::tanh(u);
      CHECK(got[i] == doctest::Approx(2 * ((1 - t * t) * u + t)));
    }
  }
}

TEST_CASE("tape audit: Tensor factories and accessors on hostile shapes and indices") {
  const std::size_t big = std::size_t(1) << 62;
  CHECK_THROWS_AS(Tensor::zeros({big, big}), ShapeError);
  CHECK_THROWS_AS(Tensor::zeros({big, 0, big}), ShapeError);
  Tensor e = Tensor::zeros({0, 3});
  CHECK(e.numel() == 0);
  CHECK(e.str().find("[]") != std::string::npos);
  CHECK_THROWS_AS(e.item(), ShapeError);
  CHECK_THROWS_AS(e.at({0, 0}), Error);
  CHECK_THROWS_AS(Tensor::from_vector({1.0, 2.0}, {3}), ValueError);
  CHECK_THROWS_AS(Tensor::from_vector(std::vector<double>{}, {big, big}), ShapeError);
  Tensor t = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK_THROWS_AS(t.at({2, 0}), Error);
  CHECK_THROWS_AS(t.at({0}), ShapeError);
  CHECK_THROWS_AS(t.at({0, 0, 0}), ShapeError);
  CHECK_THROWS_AS(t.item(), ShapeError);
  CHECK_THROWS_AS(t.dim(2), ShapeError);
  CHECK_THROWS_AS(t.dim(-3), ShapeError);
  CHECK(t.dim(-1) == 3);
  Tensor s = Tensor::scalar(kNaN);
  CHECK(s.at({}) != s.at({}));
  CHECK(s.str().find("nan") != std::string::npos);
  CHECK(Tensor::scalar(-kInf).str().find("-inf") != std::string::npos);
  CHECK_THROWS_AS(Tensor().item(), TapeError);
  CHECK(Tensor().str() == "tensor(undefined)");
  CHECK_THROWS_AS(Tensor::linspace(0, kNaN, 3), ValueError);
  CHECK_THROWS_AS(t.data<double>(), DtypeError);
  CHECK_THROWS_AS(t.assign(Tensor::zeros({3, 2})), ShapeError);
  CHECK_THROWS_AS(t.set_grad(Tensor::zeros({3, 2})), ShapeError);
  CHECK_THROWS_AS(t.set_grad(Tensor::zeros({2, 3}, Dtype::f64)), DtypeError);
}

TEST_CASE("tape audit: writes through views of views reach the base") {
  Tensor b = Tensor::arange(12, Dtype::f64);
  Tensor v = squeeze(slice(squeeze(unsqueeze(reshape(b, {3, 4}), 0), 0), 0, 1, 2), 0);  // row 1, a view of views
  CHECK(v.shares_storage(b));
  v.fill(-1);
  CHECK(b.to_vector()[4] == -1);
  CHECK(b.to_vector()[3] == 3);
  CHECK(b.to_vector()[8] == 8);
}

TEST_CASE("tape audit: detach and clone copy, and clone keeps requires_grad") {
  Tensor x = leaf64({1, 2}, {2});
  Tensor d = x.detach(), c = x.clone();
  CHECK(!d.requires_grad());
  CHECK(c.requires_grad());
  CHECK(!d.shares_storage(x));
  CHECK(!c.shares_storage(x));
  Tensor y = x * 3.0;
  Tensor yd = y.detach();
  CHECK(yd.is_leaf());
  CHECK(!yd.requires_grad());
  CHECK_THROWS_AS(y.set_requires_grad(false), TapeError);
}

TEST_CASE("tape audit: to() between dtypes keeps the gradient path") {
  Tensor x = leaf64({0.5, 2}, {2});
  Tensor y = x.to(Dtype::f32);
  CHECK(y.dtype() == Dtype::f32);
  backward(sum(y * y));
  CHECK(x.grad().dtype() == Dtype::f64);
  CHECK(x.grad().to_vector()[1] == doctest::Approx(4.0));
  CHECK(x.to(Dtype::f64).same(x));
}

TEST_CASE("tape audit: Generator seeding is deterministic") {
  Generator a(7), b(7);
  CHECK(Tensor::randn({5}, a).to_vector() == Tensor::randn({5}, b).to_vector());
}

TEST_CASE("tape audit: teaching views of an empty tape and of hostile names") {
  Tape tape;
  CHECK_NOTHROW(print_tape(tape));
  CHECK_NOTHROW(to_dot(tape));
  CHECK_NOTHROW(tape_stats(tape).str());
  CHECK_NOTHROW(explain_tape(tape));
  Tensor x = leaf64({1, 2}, {2});
  x.set_name("x\"<script>alert(1)</script>\n\\" + std::string(5000, 'a'));
  Tensor y = sum(tanh(x));
  std::string dot = to_dot(tape);
  CHECK((dot.find("<script>") == std::string::npos || dot.find("\\\"<script>") != std::string::npos));
  std::string page = tape_html(y, {.title = "</title><script>alert(2)</script>"});
  CHECK(page.find("<script>alert") == std::string::npos);
  CHECK_NOTHROW(explain_backward(y));
  CHECK_NOTHROW(print_tape(tape));
}

TEST_CASE("tape audit: teaching views of a constant or undefined root") {
  Tensor c = Tensor::scalar(1.0);
  CHECK_THROWS_AS(explain_backward(c), Error);
  CHECK_THROWS_AS(tape_html(c), Error);
  CHECK_THROWS_AS(tape_html(Tensor()), Error);
  CHECK_THROWS_AS(explain_backward(Tensor()), Error);
  CHECK_THROWS_AS(gradient_flow(Tensor(), {}), Error);
}

TEST_CASE("tape audit: gradient-ready hooks fire once per leaf") {
  Tensor x = leaf64({1, 2}, {2});
  Tensor w = leaf64({3, 4}, {2});
  int n = 0;
  auto h = on_grad_ready([&](const Tensor&) { ++n; });
  backward(sum(x * w + x));
  CHECK(n == 2);
  CHECK_THROWS_AS(on_grad_ready(GradReadyFn()), ValueError);
}

TEST_CASE("tape audit: a gradient-ready hook that removes a later hook stops it") {
  Tensor x = leaf64({1, 2}, {2});
  Tensor w = leaf64({3, 4}, {2});
  int later_calls = 0;
  std::optional<GradReadyHook> later;
  auto first = on_grad_ready([&](const Tensor&) { later.reset(); });
  later.emplace([&](const Tensor&) { ++later_calls; });
  backward(sum(x * w));
  CHECK(later_calls == 0);
}

TEST_CASE("tape audit: Tape scopes destroyed out of order leave the later one current") {
  Tape& outer = Tape::current();
  Tensor x = leaf64({1, 2}, {2});
  SUBCASE("a unique_ptr<Tape> replaced each step") {
    std::unique_ptr<Tape> tape;
    for (int step = 0; step < 3; ++step) {
      tape = std::make_unique<Tape>();  // the new one is made before the old one goes
      CHECK(&Tape::current() == tape.get());
      Tensor y = sum(x * x);
      CHECK(tape->size() == 2);
      backward(y);
    }
    tape.reset();
    CHECK(&Tape::current() == &outer);
    Tensor z = x * 2.0;  // records on the outer tape, not on a destroyed one
    CHECK(&Tape::current() == &outer);
    outer.clear();
  }
  SUBCASE("the first of two destroyed first") {
    auto a = std::make_unique<Tape>();
    auto b = std::make_unique<Tape>();
    a.reset();
    CHECK(&Tape::current() == b.get());
    b.reset();
    CHECK(&Tape::current() == &outer);
  }
}

TEST_CASE("tape audit: a value the tape dropped cannot be copied or read through any accessor") {
  const std::size_t before = detail::set_drop_min_bytes(0);
  Tape tape;
  Tensor x = leaf64({1, 2, 3}, {3});
  Tensor y = tanh(x + 1.0);  // add's output: no backward reads it, only the tape holds it
  tape.drop_unread();
  detail::set_drop_min_bytes(before);
  const Tensor dropped = tape[0].output;
  REQUIRE(dropped.value_dropped());
  CHECK(dropped.shape() == Shape{3});
  CHECK_THROWS_AS(dropped.detach(), TapeError);
  CHECK_THROWS_AS(dropped.clone(), TapeError);
  CHECK_THROWS_AS(dropped.to_vector(), TapeError);
  CHECK_THROWS_AS(dropped.at({0}), TapeError);
  CHECK_THROWS_AS(dropped.data<double>(), TapeError);
  CHECK_THROWS_AS(dropped.to(Dtype::f32), TapeError);
  CHECK_THROWS_AS(static_cast<void>(dropped * 2.0), TapeError);
  CHECK(dropped.str().find("not kept") != std::string::npos);
  backward(sum(y));  // the gradient does not need it
  CHECK(x.grad().numel() == 3);
}

TEST_CASE("tape audit: the explain helpers refuse an entry index past the tape") {
  Tape tape;
  CHECK_THROWS_AS(rule_with_operands(tape, 0), ValueError);
  CHECK_THROWS_AS(entry_headline(tape, 0), ValueError);
  Tensor x = leaf64({1, 2}, {2});
  Tensor y = sum(x * x);
  CHECK(rule_with_operands(tape, 1).size() > 0);
  CHECK_THROWS_AS(rule_with_operands(tape, 2), ValueError);
  CHECK_THROWS_AS(entry_headline(tape, static_cast<std::size_t>(-1)), ValueError);
}

TEST_CASE("tape audit: a create_graph gradient stays readable after its tape is cleared") {
  Tensor x = leaf64({1, 2}, {2});
  backward(sum(x * x * x), Tensor(), {.create_graph = true});
  Tape::current().clear();
  CHECK(x.grad().to_vector() == std::vector<double>{3, 12});
  CHECK_NOTHROW(x.zero_grad());
}

TEST_CASE("tape audit: write_html into a missing folder is an IOError naming the file") {
  Tape tape;
  Tensor x = leaf64({1, 2}, {2});
  Tensor y = sum(x * x);
  try {
    write_html("/nonexistent-dir-s12/tape.html", y);
    FAIL("no throw");
  } catch (const IOError& e) {
    CHECK(std::string(e.what()).find("/nonexistent-dir-s12/tape.html") != std::string::npos);
  }
}

TEST_CASE("tape audit: clearing or sweeping a tape from inside its own sweep is a TapeError") {
  Tape tape;
  Tensor x = leaf64({0.5, -1}, {2});
  Tensor w = leaf64({2, 3}, {2});
  SUBCASE("a gradient-ready hook clears the tape") {
    Tensor y = sum(tanh(x * 2.0) * w);  // w is final after #2; #1 and #0 are still to sweep
    auto h = on_grad_ready([&](const Tensor& leaf) {
      if (leaf.same(w)) tape.clear();
    });
    CHECK_THROWS_WITH_AS(backward(y), doctest::Contains("being swept"), TapeError);
  }
  SUBCASE("a custom op's backward runs backward() on the same tape") {
    Tensor other = sum(x * x);
    Tensor y = custom_op(
        "nested", {x}, [](const std::vector<Tensor>& in) { return sum(in[0] * 3.0); },
        [&](BackwardContext& c) {
          backward(other);  // clears the tape this sweep is walking
          c.accumulate(0, Tensor::full({2}, 3.0, Dtype::f64));
        });
    Tensor z = sum(tanh(x) * 1.0) + y;
    CHECK_THROWS_WITH_AS(backward(z), doctest::Contains("being swept"), TapeError);
  }
  tape.clear();
  // the tape still works
  x.zero_grad(true);
  backward(sum(x * w));
  CHECK(x.grad().to_vector() == std::vector<double>{2, 3});
}

TEST_CASE("tape audit: gradcheck of a non-deterministic function says so instead of blaming the gradient") {
  Tensor x = leaf64({0.3, -0.7, 1.1}, {3});
  Generator gen(3);
  auto noisy = [&](const std::vector<Tensor>& in) {
    return sum(tanh(in[0]) * Tensor::uniform({3}, 0.5, 1.5, gen, Dtype::f64));  // a fresh draw each call
  };
  CHECK_THROWS_WITH_AS(gradcheck(noisy, {x}), doctest::Contains("not deterministic"), ValueError);
  int calls = 0;
  auto drifting = [&](const std::vector<Tensor>& in) { return sum(tanh(in[0])) * static_cast<double>(++calls); };
  CHECK_THROWS_WITH_AS(gradcheck(drifting, {x}), doctest::Contains("not deterministic"), ValueError);
}

TEST_CASE("tape audit: a step-through sweep keeps its tape until it is done") {
  Tape tape;
  Tensor x = leaf64({0.5, -1}, {2});
  Tensor loss = sum(tanh(x) * x);
  {
    ReverseSweep sweep(loss);
    REQUIRE(sweep.step());
    CHECK_THROWS_WITH_AS(tape.clear(), doctest::Contains("being swept"), TapeError);
    sweep.run();
  }
  CHECK(tape.empty());
  CHECK(x.grad().numel() == 2);
  Tensor y = sum(x * x);
  {
    ReverseSweep abandoned(y, Tensor(), {.retain = true});
    abandoned.step();
  }
  CHECK_NOTHROW(tape.clear());  // an abandoned sweep lets go of its tape
}

TEST_CASE("tape audit: a checkpoint's backward run inside a NoGradGuard still re-runs under recording") {
  Tensor x = leaf64({0.5, -0.25}, {2});
  auto out = checkpoint([](const std::vector<Tensor>& in) { return std::vector<Tensor>{tanh(in[0]) * in[0]}; }, {x});
  Tensor loss = sum(out[0]);
  {
    NoGradGuard off;
    backward(loss);
  }
  auto got = x.grad().to_vector();
  auto xs = x.to_vector();
  for (std::size_t i = 0; i < 2; ++i) {
    const double t = std::tanh(xs[i]);
    CHECK(got[i] == doctest::Approx((1 - t * t) * xs[i] + t));
  }
}

TEST_CASE("tape audit: uniform draws refuse bounds that are not finite or out of order") {
  Generator gen(1);
  CHECK_THROWS_AS(Tensor::uniform({3}, kNaN, 1.0, gen), ValueError);
  CHECK_THROWS_AS(Tensor::uniform({3}, 0.0, kInf, gen), ValueError);
  CHECK_THROWS_AS(Tensor::uniform({3}, 1.0, 0.0, gen), ValueError);
  CHECK(Tensor::uniform({3}, 0.25, 0.25, gen).to_vector() == std::vector<double>{0.25, 0.25, 0.25});
}

TEST_CASE("tape audit: printing a large tensor does not copy all its values") {
  // In a child process, whose peak resident size starts at its size when forked: the peak grown by
  // str() of a 128-MiB tensor that prints six numbers.
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    Tensor big = Tensor::zeros({std::size_t(32) << 20});  // float32: 128 MiB, touched by the fill
    rusage before{}, after{};
    getrusage(RUSAGE_SELF, &before);
    const std::string text = big.str();
    getrusage(RUSAGE_SELF, &after);
    const long grown_kib = after.ru_maxrss - before.ru_maxrss;
    _exit(text.find("...") != std::string::npos && grown_kib < 32 * 1024 ? 0 : 1);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("tape audit: a gradient set from a tape value outlives the tape's clear") {
  Tensor x = leaf64({1, 2}, {2});
  {
    Tape tape;
    Tensor g = x * 2.0;  // recorded
    x.set_grad(g);
  }  // the tape is cleared
  CHECK(x.grad().to_vector() == std::vector<double>{2, 4});
  CHECK_NOTHROW(x.zero_grad());
  CHECK(x.grad().to_vector() == std::vector<double>{0, 0});  // a constant once its tape is gone
}

TEST_CASE("tape audit: a custom backward that sends to an input the entry does not have is a TapeError") {
  Tensor x = leaf64({1, 2}, {2});
  using Send = std::function<void(BackwardContext&)>;
  const std::vector<std::pair<const char*, Send>> sends = {
      {"accumulate", [](BackwardContext& c) { c.accumulate(5, c.grad_out()); }},
      {"accumulate_slice", [](BackwardContext& c) { c.accumulate_slice(1, c.grad_out(), 0, 0, 2, 1); }},
      {"accumulate_matmul",
       [](BackwardContext& c) { c.accumulate_matmul(3, reshape(c.grad_out(), {2, 1}), Tensor::ones({1, 1}, Dtype::f64)); }},
      {"needs_grad", [](BackwardContext& c) { static_cast<void>(c.needs_grad(7)); }},
  };
  for (const auto& [what, send] : sends) {
    CAPTURE(what);
    Tape tape;
    Tensor y = custom_op(
        "one_input", {x}, [](const std::vector<Tensor>& in) { return in[0] * 1.0; }, send);
    CHECK_THROWS_WITH_AS(backward(sum(y)), doctest::Contains("one_input"), TapeError);
  }
}

TEST_CASE("tape audit: grad and checkpoint name an undefined or released input") {
  Tensor x = leaf64({1, 2}, {2});
  {
    Tape tape;
    Tensor y = sum(x * x);
    CHECK_THROWS_WITH_AS(grad({y}, {x, Tensor()}), doctest::Contains("grad: input 1"), TapeError);
  }
  Tensor gone;
  {
    Tape tape;
    gone = x * 2.0;
  }
  auto id = [](const std::vector<Tensor>& in) { return std::vector<Tensor>{in[0] * 1.0}; };
  CHECK_THROWS_WITH_AS(checkpoint(id, {x, gone}, "piece"), doctest::Contains("piece: input 1"), TapeError);
}

TEST_CASE("tape audit: a custom backward that reads an input or output the entry does not have is a TapeError") {
  Tensor x = leaf64({1, 2}, {2});
  using Read = std::function<void(BackwardContext&)>;
  const std::vector<std::pair<const char*, Read>> reads = {
      {"input", [](BackwardContext& c) { static_cast<void>(c.input(9).numel()); }},
      {"grad_out", [](BackwardContext& c) { static_cast<void>(c.grad_out(3).numel()); }},
      {"output", [](BackwardContext& c) { static_cast<void>(c.output(2).numel()); }},
  };
  for (const auto& [what, read] : reads) {
    CAPTURE(what);
    Tape tape;
    Tensor y = custom_op(
        "reader", {x}, [](const std::vector<Tensor>& in) { return in[0] * 1.0; }, read);
    CHECK_THROWS_WITH_AS(backward(sum(y)), doctest::Contains("reader"), TapeError);
  }
}
