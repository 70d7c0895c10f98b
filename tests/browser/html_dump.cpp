// tests/browser/html_dump.cpp — writes the pages the browser test opens, and next to each page what
// ReverseSweep gives at each step (its own sweep, not the page's), for the test to compare the DOM with.
//
//   rewind_html_dump OUT_DIR    →  OUT_DIR/rnn.html, rnn.json, lstm200.html, lstm200.json
//
// rnn: the tutorial's 3-step tanh RNN (two hidden units, fixed weights), each step marked on the tape
// (t=0, 1, 2), with a gradcheck of its three parameters. lstm200: an LSTM layer over 200 steps, for
// the load time of a long unroll.
#include <rewind.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

using namespace rwd;

namespace {

std::string js(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string numbers(const Tensor& t) {
  std::string s = "[";
  char buf[32];
  for (double v : t.to_vector()) {
    std::snprintf(buf, sizeof buf, "%.17g", v);
    s += (s.size() > 1 ? "," : "") + std::string(buf);
  }
  return s + "]";
}

// What a plain ReverseSweep (retained) gives at each step, and the leaves' .grad() it leaves.
void dump(const std::string& path, const Tensor& loss, const std::vector<Tensor>& params) {
  for (Tensor p : params) p.zero_grad();
  ReverseSweep sweep(loss, Tensor(), SweepOptions{.retain = true});
  const Tape& tape = sweep.tape();
  std::string out = "{\"entries\":" + std::to_string(tape.size()) + ",\"steps\":[";
  for (bool first = true; sweep.step(); first = false) {
    const auto i = static_cast<std::size_t>(sweep.current());
    std::string dy;
    for (const Tensor& a : sweep.adjoints_in()) dy += (dy.empty() ? "" : "; ") + shaped_value(a);
    out += std::string(first ? "" : ",\n") + "{\"entry\":" + std::to_string(i) + ",\"rule\":" +
           js(rule_with_operands(tape, i)) + ",\"adjoint\":" + js(dy) + ",\"adjoint_values\":" +
           numbers(sweep.adjoint_in()) + ",\"headline\":" + js(entry_headline(tape, i)) + "}";
  }
  out += "],\"grads\":{";
  for (std::size_t k = 0; k < params.size(); ++k)
    out += (k ? "," : "") + js(params[k].name()) + ":" + js(shaped_value(params[k].grad()));
  std::ofstream(path) << out << "}}\n";
}

Tensor column(std::vector<double> v, const char* name, bool param = false) {
  const std::size_t n = v.size();
  Tensor t = Tensor::from_vector(v, {n, 1}, float64).set_name(name);
  if (param) t.set_requires_grad();
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: rewind_html_dump OUT_DIR\n";
    return 2;
  }
  const std::string dir = argv[1];
  {
    Tensor W_x = column({0.5, -0.3}, "W_x", true), b = column({0.05, -0.1}, "b", true);
    Tensor W_h = Tensor::from_vector(std::vector<double>{0.1, -0.2, 0.4, 0.3}, {2, 2}, float64)
                     .set_name("W_h")
                     .set_requires_grad();
    const std::vector<Tensor> xs = {column({1.0}, "x1"), column({-2.0}, "x2"), column({0.5}, "x3")};
    const Tensor h0 = Tensor::zeros({2, 1}, float64).set_name("h0"), v = column({1.0, -0.5}, "v");
    auto loss_of = [&](const std::vector<Tensor>&) {
      Tape& tape = Tape::current();
      std::vector<Tensor> hs;
      Tensor h = h0;
      for (std::size_t t = 0; t < xs.size(); ++t) {
        tape.mark_step(static_cast<std::int64_t>(t));
        Tensor wx = matmul(W_x, xs[t]);
        Tensor wh = matmul(W_h, h);
        hs.push_back(h = tanh(wx + wh + b));
      }
      tape.mark_step(-1);
      return sum((hs[0] + hs[1] + hs[2]) * v);
    };
    const GradcheckReport report = gradcheck(loss_of, {W_x, W_h, b});
    Tape tape;
    tape.keep_values();  // the page shows every value
    Tensor loss = loss_of({});
    write_html(dir + "/rnn.html", loss, {.title = "a 3-step tanh RNN", .gradcheck = &report});
    dump(dir + "/rnn.json", loss, {W_x, W_h, b});
  }
  {
    Generator gen(3);
    Recurrent lstm = LSTM(1, 4, {.dtype = float64}, gen);
    Tape tape;
    tape.keep_values();
    Tensor loss = sum(lstm(Tensor::uniform({200, 1, 1}, -1, 1, gen, float64)));
    write_html(dir + "/lstm200.html", loss, {.title = "an LSTM over 200 steps"});
    dump(dir + "/lstm200.json", loss, lstm.parameters());
  }
  std::cout << "wrote " << dir << "/rnn.html, rnn.json, lstm200.html, lstm200.json\n";
  return 0;
}
