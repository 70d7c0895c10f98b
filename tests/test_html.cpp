// write_html / tape_html (autograd/html.hpp): what the page holds and what writing it leaves behind.
// The page's behaviour in a browser is tested by tests/browser/check_page.py (CTest: browser_tape_page).
#include <doctest/doctest.h>

#include <rewind.hpp>

#include "support.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using namespace rwd;

namespace {

// h_t = tanh(W_x·x_t + W_h·h_{t−1} + b) for three steps, each marked on the tape; loss = Σ h_3 ⊙ v.
struct Rnn {
  Tensor W_x = Tensor::from_vector(std::vector<double>{0.5, -0.3}, {2, 1}, float64).set_name("W_x").set_requires_grad();
  Tensor W_h = Tensor::from_vector(std::vector<double>{0.1, -0.2, 0.4, 0.3}, {2, 2}, float64)
                   .set_name("W_h")
                   .set_requires_grad();
  Tensor b = Tensor::from_vector(std::vector<double>{0.05, -0.1}, {2, 1}, float64).set_name("b").set_requires_grad();
  Tensor v = Tensor::from_vector(std::vector<double>{1.0, -0.5}, {2, 1}, float64).set_name("v");
  Tensor loss(const std::vector<Tensor>& = {}) const {
    Tensor h = Tensor::zeros({2, 1}, float64).set_name("h0");
    const std::vector<double> xs = {1.0, -2.0, 0.5};
    for (std::int64_t t = 0; t < 3; ++t) {
      Tape::current().mark_step(t);
      Tensor wx = matmul(W_x, Tensor::from_vector(std::vector<double>{xs[t]}, {1, 1}, float64));
      Tensor wh = matmul(W_h, h);
      h = tanh(wx + wh + b);
    }
    Tape::current().mark_step(-1);
    return sum(h * v);
  }
};

std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + what.size())) ++n;
  return n;
}

// The string as the page's JSON writes it (the rules and values here need only quotes escaped).
std::string quoted(const std::string& s) { return "\"" + s + "\""; }

}  // namespace

TEST_CASE("html: the page is built from a sweep that leaves .grad and the tape as they were") {
  Tape tape;
  tape.keep_values();
  Rnn rnn;
  Tensor loss = rnn.loss();
  const std::size_t entries = tape.size();
  const std::string page = tape_html(loss);
  CHECK_FALSE(rnn.W_h.grad().defined());  // grad()'s way: nothing accumulated
  CHECK(tape.size() == entries);          // retained
  loss.backward();                        // so a real backward still follows, once
  Rnn fresh;
  fresh.loss().backward();
  CHECK(rnn.W_h.grad().to_vector() == fresh.W_h.grad().to_vector());
  CHECK(contains(page, "<!DOCTYPE html>"));
}

TEST_CASE("html: one reverse step per entry the sweep visits, each with the explain view's rule and dy") {
  Tape tape;
  tape.keep_values();
  Rnn rnn;
  Tensor loss = rnn.loss();
  const std::string page = tape_html(loss);
  ReverseSweep sweep(loss, Tensor(), SweepOptions{.retain = true});
  std::size_t steps = 0;
  while (sweep.step()) {
    ++steps;
    const auto i = static_cast<std::size_t>(sweep.current());
    CHECK(contains(page, "{\"e\":" + std::to_string(i) + ",\"dy\":" + quoted(shaped_value(sweep.adjoint_in())) +
                             ",\"rule\":" + quoted(rule_with_operands(sweep.tape(), i)) + ","));
  }
  CHECK(steps == tape.size());
  CHECK(count(page, "{\"e\":") == steps);
  CHECK(contains(page, "\"rule\":\"dW_h += dy·#9ᵀ; d#9 += W_hᵀ·dy\""));  // #11 = matmul(W_h, h_2) at t=2
}

TEST_CASE("html: a box per time step, a leaf drawn once and referenced in later steps") {
  Tape tape;
  tape.keep_values();
  Rnn rnn;
  const std::string page = tape_html(rnn.loss());
  // The bands: [t, x, y, w, h] for t = 0, 1, 2, then the loss (t = −1).
  CHECK(contains(page, "\"bands\":[[0,"));
  CHECK(contains(page, "],[1,"));
  CHECK(contains(page, "],[2,"));
  CHECK(contains(page, "],[-1,"));
  // W_h: drawn in band 0, referenced in bands 1 and 2.
  const auto at = page.find("{\"label\":\"W_h\"");
  REQUIRE(at != std::string::npos);
  const std::string w_h = page.substr(at, page.find('}', at) - at);
  CHECK(contains(w_h, "\"band\":0,\"refs\":[[1,"));
  CHECK(contains(w_h, "],[2,"));
}

TEST_CASE("html: the page is self-contained and no value can break out of its script") {
  Tape tape;
  tape.keep_values();
  Tensor x = Tensor::from_vector(std::vector<double>{1, 2}, {2}, float64).set_name("</script><b>x").set_requires_grad();
  const std::string page = tape_html(sum(x * x));
  // Only the SVG namespace names a URL; nothing is fetched.
  CHECK(count(page, "http") == count(page, "http://www.w3.org/2000/svg"));
  CHECK_FALSE(contains(page, " src="));
  CHECK_FALSE(contains(page, "<link"));
  CHECK_FALSE(contains(page, "@import"));
  CHECK(count(page, "</script>") == 2);  // the data's and the code's, not the name's
  CHECK(contains(page, "\\u003c/script>\\u003cb>x"));
}

TEST_CASE("html: gradcheck's verdict is shown per leaf, by name") {
  Tape tape;
  tape.keep_values();
  Rnn rnn;
  const GradcheckReport report = gradcheck([&](const std::vector<Tensor>& in) { return rnn.loss(in); },
                                           {rnn.W_x, rnn.W_h, rnn.b});
  REQUIRE(report.ok());
  const std::string page = tape_html(rnn.loss(), {.gradcheck = &report});
  CHECK(count(page, "\"check\":\"gradcheck: ok, ") == 3);  // W_x, W_h, b
  CHECK(contains(page, "\"label\":\"v\",\"shape\":\"(2, 1)\",\"grad\":false,\"value\":\"[[1], [-0.5]]\",\"check\":\"\""));
}

TEST_CASE("html: write_html refuses a leaf or a cleared tape, and names the file it cannot write") {
  Tape tape;
  tape.keep_values();
  Rnn rnn;
  CHECK(contains(message_of<TapeError>([&] { tape_html(rnn.W_x); }), "write_html: the root W_x is not a recorded value"));
  CHECK(contains(message_of<ShapeError>([&] { tape_html(matmul(rnn.W_h, rnn.W_x)); }),
                 "write_html: the root has shape (2, 1); pass HtmlOptions::seed"));
  const Tensor seeded = matmul(rnn.W_h, rnn.W_x);
  CHECK(contains(tape_html(seeded, {.seed = Tensor::ones({2, 1}, float64)}), "\"steps\":[{\"e\":"));
  Tensor loss = rnn.loss();
  const std::string missing = "/nonexistent-dir-of-rewind/tape.html";
  CHECK(contains(message_of<IOError>([&] { write_html(missing, loss); }), missing));
  const auto dir = std::filesystem::temp_directory_path() / ("rewind-html-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "tape.html").string();
  write_html(path, loss, {.title = "a <small> RNN"});
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  CHECK(text.str() == tape_html(loss, {.title = "a <small> RNN"}));
  CHECK(contains(text.str(), "<title>a &lt;small> RNN</title>"));
  std::filesystem::remove_all(dir);
  loss.backward();  // the tape cleared: its root is no longer a recorded value
  CHECK(contains(message_of<TapeError>([&] { tape_html(loss); }), "write_html: the root"));
}

TEST_CASE("html: without keep_values, a value no backward reads shows as not kept, and the page still builds") {
  const DropAtAnySize drop_at_any_size;
  Tape tape;  // the default: values no backward reads are freed at each time step (Tape::drop_unread)
  Rnn rnn;
  Tensor loss = rnn.loss();
  const std::string page = tape_html(loss);
  CHECK(contains(page, "not kept: no backward reads it"));  // e.g. W_x·x_t, read by no backward (add reads nothing)
  CHECK(contains(page, "tanh"));
  Tape kept;
  kept.keep_values();
  CHECK(kept.keeps_values());
  Tensor loss2 = rnn.loss();
  CHECK_FALSE(contains(tape_html(loss2), "not kept"));
}
