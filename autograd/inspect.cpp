// The tape rendered as text and as a Graphviz graph, through the public Tensor API only.
#include "inspect.hpp"

#include <algorithm>
#include <cmath>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <ostream>
#include <unordered_map>
#include <utility>

#include "../core/dtype.hpp"
#include "ops.hpp"

namespace rwd {

namespace {

// ---- formatting ----

// %.4g, with −0 printed as 0 so golden text does not depend on the sign of a zero.
std::string num(double v) {
  if (v == 0) v = 0;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

// Up to four values as themselves ("0.5" for 0-d, "[0.5, -1]" otherwise), else mean/min/max.
std::string summarize(const std::vector<double>& v, const Shape& shape) {
  if (shape.ndim() == 0 && v.size() == 1) return num(v[0]);
  if (v.size() <= 4) {
    std::string s = "[";
    for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + num(v[i]);
    return s + "]";
  }
  double sum = 0, lo = v[0], hi = v[0];
  for (double x : v) {
    sum += x;
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  return "mean=" + num(sum / static_cast<double>(v.size())) + " min=" + num(lo) + " max=" + num(hi);
}

std::string summarize(const Tensor& t) {
  if (!t.defined()) return "—";
  if (t.value_dropped()) return "(not kept: no backward reads it)";
  return summarize(t.to_vector(), t.shape());
}

// The elements [at, at + size of dims d…) nested by the shape: "[[0.1, -0.2], [0.4, 0.3]]".
std::string nested(const std::vector<double>& v, const Shape& shape, std::size_t d, std::size_t& at) {
  if (d == shape.ndim()) return num(v[at++]);
  std::string s = "[";
  for (std::size_t k = 0; k < shape[d]; ++k) s += (k ? ", " : "") + nested(v, shape, d + 1, at);
  return s + "]";
}

// As summarize, but nested by the shape when in full, and with the shape first when summarised: a
// gradient reads as the tensor it is, not as a flat list.
std::string shaped(const std::vector<double>& v, const Shape& shape, std::size_t full = 4) {
  if (v.size() > full) return shape.str() + " " + summarize(v, shape);
  std::size_t at = 0;
  return v.size() == shape.numel() ? nested(v, shape, 0, at) : summarize(v, shape);
}

// Terminal columns of a UTF-8 string: one per code point (the rules use ⊙, −, ², ᵀ, ·).
std::size_t width(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string pad(const std::string& s, std::size_t w) {
  const std::size_t n = width(s);
  return n >= w ? s : s + std::string(w - n, ' ');
}

std::string rpad(const std::string& s, std::size_t w) {
  const std::size_t n = width(s);
  return n >= w ? s : std::string(w - n, ' ') + s;
}

void rtrim(std::string& s) {
  while (!s.empty() && s.back() == ' ') s.pop_back();
}

// Rows of cells, each column padded to its widest cell, two spaces between columns.
std::string table(const std::vector<std::vector<std::string>>& rows, const std::string& indent = "",
                  const std::vector<bool>& right = {}) {
  std::vector<std::size_t> w;
  for (const auto& r : rows) {
    if (w.size() < r.size()) w.resize(r.size(), 0);
    for (std::size_t c = 0; c < r.size(); ++c) w[c] = std::max(w[c], width(r[c]));
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line = indent;
    for (std::size_t c = 0; c < r.size(); ++c) {
      if (c) line += "  ";
      line += c < right.size() && right[c] ? rpad(r[c], w[c]) : pad(r[c], w[c]);
    }
    rtrim(line);
    out += line + "\n";
  }
  return out;
}

// ---- names of things on a tape ----

// "#k" for a tape entry, the name of a named leaf, "leaf (2, 1)" / "const (2, 1)" / "const 0.5".
std::string label(const Tensor& x) {
  if (!x.defined()) return "?";
  const std::int64_t k = x.tape_index();
  if (k >= 0) {
    const std::size_t o = output_index(x);  // "#k" for output 0, "#k.1" for a later output
    // A recorded value the user named (set_name("h1")) carries its name: "#8:h1".
    return "#" + std::to_string(k) + (o ? "." + std::to_string(o) : "") + (x.name().empty() ? "" : ":" + x.name());
  }
  if (!x.name().empty()) return x.name();
  if (x.requires_grad()) return "leaf " + x.shape().str();
  if (x.numel() == 1) return "const " + num(x.item());
  return "const " + x.shape().str();
}

std::string inputs_of(const Node& n) {
  std::string s;
  for (std::size_t k = 0; k < n.inputs.size(); ++k) s += (k ? ", " : "") + label(n.inputs[k]);
  return s;
}

// "(2, 1)", or "(2, 1), (3,)" for a multi-output entry.
std::string output_shapes(const Node& n) {
  std::string s;
  for (std::size_t k = 0; k < n.num_outputs(); ++k) s += (k ? ", " : "") + n.output_at(k).shape().str();
  return s;
}

// "#4 tanh(#3) → (2, 1)"
// "#9" or "#9:h1" when the entry's output was named.
std::string entry_label(std::size_t i, const Node& n) {
  const std::string& name = n.output.defined() ? n.output.name() : std::string();
  return "#" + std::to_string(i) + (name.empty() ? "" : ":" + name);
}

std::string headline(const Tape& tape, std::size_t i, const Node& n) {
  const std::int64_t t = tape.step_of(i);  // the time step of a recurrent layer, if any
  return entry_label(i, n) + (t >= 0 ? " t=" + std::to_string(t) : "") + " " + n.op + "(" + inputs_of(n) + ") → " +
         output_shapes(n);
}

// One entry of a sweep: its headline, then dy (dy0, dy1, … for several outputs), the rule and one
// "→ input  adjoint" line per input.
std::string render_step(const Tape& tape, std::size_t i, const Node& n, const std::vector<Tensor>& dys,
                        const std::vector<Tensor>& sent) {
  std::vector<std::vector<std::string>> rows;
  if (dys.size() == 1) rows.push_back({"dy", shaped_value(dys[0])});
  for (std::size_t k = 0; dys.size() > 1 && k < dys.size(); ++k)
    rows.push_back({"dy" + std::to_string(k), dys[k].defined() ? shaped_value(dys[k]) : "— (output not used)"});
  rows.push_back({"rule", rule_with_operands(tape, i)});
  for (std::size_t k = 0; k < n.inputs.size(); ++k) {
    const Tensor& g = k < sent.size() ? sent[k] : Tensor();
    std::string what = g.defined() ? shaped_value(g) : n.inputs[k].requires_grad() ? "— (nothing sent)" : "— (constant)";
    rows.push_back({"→ " + label(n.inputs[k]), what});
  }
  return headline(tape, i, n) + "\n" + table(rows, "    ");
}

// A leaf taking a gradient, in the order leaves first appear on the tape.
struct LeafSum {
  Tensor leaf;
  std::vector<double> total;
  std::vector<std::string> from;  // the entries that sent to it
};

std::string dot_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// A DOT label from lines: each escaped, joined by DOT's \n.
std::string dot_label(const std::vector<std::string>& lines) {
  std::string s;
  for (std::size_t i = 0; i < lines.size(); ++i) s += (i ? "\\n" : "") + dot_escape(lines[i]);
  return "\"" + s + "\"";
}

}  // namespace

// ---- print_tape ----

std::string print_tape(const Tape& tape) {
  if (tape.empty()) return "(empty tape)\n";
  // A "t" column (a recurrent layer's time step) when some entry has one.
  bool steps = false;
  for (std::size_t i = 0; i < tape.size() && !steps; ++i) steps = tape.step_of(i) >= 0;
  std::vector<std::vector<std::string>> rows{{"#", "op", "inputs", "shape", "value"}};
  if (steps) rows[0].insert(rows[0].begin() + 1, "t");
  for (std::size_t i = 0; i < tape.size(); ++i) {
    const Node& n = tape[i];
    std::string values;
    for (std::size_t k = 0; k < n.num_outputs(); ++k) values += (k ? "; " : "") + summarize(n.output_at(k));
    rows.push_back({entry_label(i, n), n.op, inputs_of(n), output_shapes(n), values});
    if (steps) {
      const std::int64_t t = tape.step_of(i);
      rows.back().insert(rows.back().begin() + 1, t >= 0 ? std::to_string(t) : "");
    }
  }
  return table(rows);
}

// ---- explain ----

std::string explain_backward(const Tensor& root, const Tensor& seed) {
  SweepOptions options;
  options.retain = true;  // the tape stays for explain_tape, print_tape and to_dot
  options.keep_adjoints = true;
  ReverseSweep sweep(root, seed, options);
  sweep.run();
  // A leaf root has no tape to explain (and the sweep has none to return): it is its own gradient.
  if (root.tape_index() < 0) return label(root) + " is a leaf: its gradient is the seed, nothing was recorded\n";
  return explain_tape(sweep.tape());
}

std::string explain_tape(const Tape& tape) {
  if (tape.empty()) return "(empty tape)\n";
  const SweepTrace* trace = tape.last_trace();
  bool any = false;
  for (std::size_t i = 0; trace && i < tape.size(); ++i) any = any || trace->at(i);
  if (!any) return "(no adjoints on this tape: sweep it with keep_adjoints, or use explain_backward)\n";

  std::string out;
  // A checkpoint's re-run entries (autograd/checkpoint.hpp) sit at the end of the tape but were swept
  // in its place: they are shown there, under it, and skipped where they sit.
  std::vector<bool> rerun(tape.size(), false);
  for (const EntryTrace& e : trace->entries)
    for (std::size_t j = e.rerun_first; j < e.rerun_end && j < rerun.size(); ++j) rerun[j] = true;
  std::function<void(std::size_t)> show = [&](std::size_t i) {
    const Node& n = tape[i];
    const EntryTrace* e = trace->at(i);
    if (!e) {
      out += headline(tape, i, n) + "\n    (no adjoint reached it)\n";
      return;
    }
    out += render_step(tape, i, n, e->adjoints, e->sent);
    if (e->rerun_end <= e->rerun_first) return;
    out += "    checkpoint: re-running " + std::to_string(e->rerun_end - e->rerun_first) + " entries (#" +
           std::to_string(e->rerun_first) + "…#" + std::to_string(e->rerun_end - 1) + "), swept here:\n";
    for (std::size_t j = e->rerun_end; j-- > e->rerun_first;) show(j);
    out += "    checkpoint: re-run of #" + std::to_string(i) + " done\n";
  };
  for (std::size_t i = tape.size(); i-- > 0;)
    if (!rerun[i]) show(i);

  // What reached each leaf, summed: the accumulate rule made visible (a leaf used twice gets two).
  std::vector<LeafSum> leaves;
  std::unordered_map<const void*, std::size_t> where;
  for (std::size_t i = 0; i < tape.size(); ++i) {
    const Node& n = tape[i];
    const EntryTrace* e = trace->at(i);
    for (std::size_t k = 0; k < n.inputs.size(); ++k) {
      const Tensor& x = n.inputs[k];
      if (x.tape_index() >= 0 || !x.requires_grad()) continue;
      auto [it, fresh] = where.try_emplace(x.impl_ptr().get(), leaves.size());
      if (fresh) leaves.push_back({x, {}, {}});
      if (!e || k >= e->sent.size() || !e->sent[k].defined()) continue;
      LeafSum& l = leaves[it->second];
      const std::vector<double> g = e->sent[k].to_vector();
      if (l.total.empty()) l.total.assign(g.size(), 0.0);
      for (std::size_t e = 0; e < g.size() && e < l.total.size(); ++e) l.total[e] += g[e];
      l.from.push_back("#" + std::to_string(i));
    }
  }
  if (leaves.empty()) return out;
  out += "leaf gradients (the sum of what each leaf was sent):\n";
  std::vector<std::vector<std::string>> rows;
  for (auto l = leaves.begin(); l != leaves.end(); ++l) {
    if (l->from.empty()) {
      rows.push_back({label(l->leaf), "— (nothing reached it)"});
      continue;
    }
    // Reverse order of arrival reads as the sweep ran: last entry first.
    std::string from;
    for (auto f = l->from.rbegin(); f != l->from.rend(); ++f) from += (from.empty() ? "" : " + ") + *f;
    rows.push_back({label(l->leaf), shaped(l->total, l->leaf.shape()), "from " + from});
  }
  return out + table(rows, "    ");
}

// ---- the rule with its operands ----

namespace {

// An operand as a rule shows it: "#9" for an entry (its name is in the headline), a leaf's name, a
// one-element constant's value, else the label in parentheses ("(leaf (2,))").
std::string operand(const Tensor& x) {
  if (x.tape_index() >= 0) {
    const std::size_t o = output_index(x);
    return "#" + std::to_string(x.tape_index()) + (o ? "." + std::to_string(o) : "");
  }
  if (!x.name().empty()) return x.name();
  if (!x.requires_grad() && x.numel() == 1) {
    const std::string v = num(x.item());
    return v[0] == '-' ? "(" + v + ")" : v;
  }
  return "(" + label(x) + ")";
}

bool ident_start(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool ident_char(char c) { return ident_start(c) || (c >= '0' && c <= '9'); }

// A rule clause "dS += expr" (or "−=") split into S and the rest; false if it does not read so.
bool split_clause(const std::string& clause, std::string& symbol) {
  if (clause.size() < 2 || clause[0] != 'd' || !ident_start(clause[1])) return false;
  std::size_t e = 1;
  while (e < clause.size() && ident_char(clause[e])) ++e;
  symbol = clause.substr(1, e - 1);
  return clause.compare(e, 4, " += ") == 0 || clause.compare(e, std::strlen(" −= "), " −= ") == 0;
}

}  // namespace

// The rule's text is written once, with symbols (primitives.hpp); its clauses "dS += …" name the
// inputs in order, and the one other d-symbol (dy, dz, dC) is the output's adjoint. Each identifier
// is replaced by what it stands for in this entry; the rest (⊙, ᵀ, broadcast(…)) is kept as written.
namespace {
// Tape::operator[] is unchecked (the sweep's path); the explain helpers take an index from the user.
void check_entry(const char* what, const Tape& tape, std::size_t i) {
  if (i >= tape.size())
    throw ValueError(std::string(what) + ": entry #" + std::to_string(i) + " is past the tape's " +
                     std::to_string(tape.size()) + (tape.size() == 1 ? " entry" : " entries"));
}
}  // namespace

std::string rule_with_operands(const Tape& tape, std::size_t i) {
  check_entry("rule_with_operands", tape, i);
  const Node& n = tape[i];
  const std::string rule = n.rule;
  if (rule.empty()) return "(none recorded)";
  if (n.num_outputs() != 1) return rule;
  // A note at the end, " (summed to shape)", is kept apart: it is prose, not symbols.
  std::string body = rule, note;
  if (const auto open = body.rfind(" ("); open != std::string::npos && body.back() == ')' &&
                                          body.find(')', open) == body.size() - 1) {
    note = body.substr(open);
    body = body.substr(0, open);
    while (!body.empty() && body.back() == ' ') body.pop_back();
  }
  std::vector<std::string> clauses, symbols;
  for (std::size_t from = 0;;) {
    const std::size_t semi = body.find("; ", from);
    clauses.push_back(body.substr(from, semi == std::string::npos ? std::string::npos : semi - from));
    if (semi == std::string::npos) break;
    from = semi + 2;
  }
  for (const std::string& c : clauses) {
    std::string symbol;
    if (!split_clause(c, symbol)) return rule;
    symbols.push_back(symbol);
  }
  if (symbols.size() != n.inputs.size()) return rule;
  std::map<std::string, std::string> to;  // symbol → what it stands for here
  for (std::size_t k = 0; k < symbols.size(); ++k) {
    to[symbols[k]] = operand(n.inputs[k]);
    to["d" + symbols[k]] = "d" + operand(n.inputs[k]);
  }
  // The identifiers of each clause, from `at`: [begin, end) of each in the clause.
  auto identifiers = [](const std::string& c) {
    std::vector<std::pair<std::size_t, std::size_t>> ids;
    for (std::size_t p = 0; p < c.size();) {
      if (!ident_start(c[p])) {
        ++p;
        continue;
      }
      std::size_t e = p;
      while (e < c.size() && ident_char(c[e])) ++e;
      ids.emplace_back(p, e);
      p = e;
    }
    return ids;
  };
  // The output's adjoint: the one d-letter that is not an input's (dy, dz, dC); its letter alone is
  // the output's value, this entry.
  for (const std::string& c : clauses)
    for (auto [b, e] : identifiers(c))
      if (e - b == 2 && c[b] == 'd' && !to.count(c.substr(b, 2))) {
        to[c.substr(b, 2)] = "dy";
        to[c.substr(b + 1, 1)] = "#" + std::to_string(i);
      }
  std::string out;
  for (std::size_t k = 0; k < clauses.size(); ++k) {
    if (!n.inputs[k].requires_grad()) continue;  // a constant takes no gradient
    const std::string& c = clauses[k];
    std::string line;
    std::size_t copied = 0;
    for (auto [b, e] : identifiers(c)) {
      const auto it = to.find(c.substr(b, e - b));
      if (it == to.end()) continue;
      line += c.substr(copied, b - copied);
      // "2y" with y = #9 reads "2·#9".
      if (b > 0 && std::isdigit(static_cast<unsigned char>(c[b - 1]))) line += "·";
      line += it->second;
      copied = e;
    }
    out += (out.empty() ? "" : "; ") + line + c.substr(copied);
  }
  return out.empty() ? rule : out + note;
}

std::string shaped_value(const Tensor& t, std::size_t full) {
  if (!t.defined()) return "—";
  if (t.value_dropped()) return "(not kept: no backward reads it)";
  return shaped(t.to_vector(), t.shape(), full);
}

std::string entry_headline(const Tape& tape, std::size_t i) {
  check_entry("entry_headline", tape, i);
  return headline(tape, i, tape[i]);
}

std::string operand_label(const Tensor& x) { return label(x); }

std::string describe_step(const ReverseSweep& sweep) {
  if (sweep.done()) return "(the sweep is finished)\n";
  if (sweep.current() < 0) return "(no step taken yet)\n";
  const auto i = static_cast<std::size_t>(sweep.current());
  return render_step(sweep.tape(), i, sweep.tape()[i], sweep.adjoints_in(), sweep.adjoints_out());
}

// ---- DOT ----

std::string to_dot(const Tape& tape) { return to_dot(tape, DotOptions{}); }

std::string to_dot(const Tape& tape, const DotOptions& options) {
  std::string out = std::string("digraph tape {\n") + "  rankdir=" + (options.top_to_bottom ? "TB" : "LR") + ";\n" +
                    "  node [shape=box, fontname=\"monospace\", fontsize=10];\n"
                    "  edge [fontname=\"monospace\", fontsize=9, fontcolor=\"#b03020\"];\n";
  std::unordered_map<const void*, std::string> leaf_ids;
  const SweepTrace* trace = tape.last_trace();
  // A recurrent layer's steps as clusters: one per run of entries recorded in one time step.
  std::string edges;             // edges and leaves stay outside the clusters (a weight serves every step)
  std::int64_t open_step = -1;   // the time step of the cluster being written, −1 outside
  std::size_t clusters = 0;
  auto close_cluster = [&] {
    if (open_step >= 0) out += "  }\n";
    open_step = -1;
  };
  for (std::size_t i = 0; i < tape.size(); ++i) {
    const Node& n = tape[i];
    const EntryTrace* e = trace ? trace->at(i) : nullptr;
    const std::string id = "n" + std::to_string(i);
    const std::int64_t t = options.cluster_steps ? tape.step_of(i) : -1;
    if (t != open_step || (t >= 0 && i > 0 && tape.step_of(i - 1) != t)) {
      close_cluster();
      if (t >= 0) {
        out += "  subgraph cluster_" + std::to_string(clusters++) + " {\n    label=\"t=" + std::to_string(t) +
               "\"; style=rounded; color=\"#999999\"; fontname=\"monospace\";\n";
        open_step = t;
      }
    }
    // Outside a cluster leaves and edges are written in place; inside one they wait for its end.
    std::string& side = open_step >= 0 ? edges : out;
    // Leaves are declared where first used, so the text reads in recording order.
    for (const Tensor& x : n.inputs) {
      if (x.tape_index() >= 0) continue;
      auto [it, fresh] = leaf_ids.try_emplace(x.impl_ptr().get(), "leaf" + std::to_string(leaf_ids.size()));
      if (!fresh) continue;
      std::vector<std::string> lines{label(x), x.shape().str(), summarize(x)};
      if (x.requires_grad() && x.grad().defined()) lines.push_back("grad " + summarize(x.grad()));
      side += "  " + it->second + " [label=" + dot_label(lines) + ", shape=ellipse" +
               (x.requires_grad() ? ", style=filled, fillcolor=\"#dbe9f6\"" : ", color=gray") + "];\n";
    }
    std::vector<std::string> lines{"#" + std::to_string(i) + " " + n.op};
    for (std::size_t k = 0; k < n.num_outputs(); ++k) {
      lines.push_back(n.output_at(k).shape().str());
      lines.push_back(summarize(n.output_at(k)));
    }
    for (std::size_t k = 0; e && k < e->adjoints.size(); ++k)
      if (e->adjoints[k].defined()) lines.push_back("adj " + summarize(e->adjoints[k]));
    out += std::string(open_step >= 0 ? "    " : "  ") + id + " [label=" + dot_label(lines) + "];\n";
    for (std::size_t k = 0; k < n.inputs.size(); ++k) {
      const Tensor& x = n.inputs[k];
      // (Appended, not "n" + to_string(…): g++ 12 warns falsely (-Wrestrict) on that form here.)
      std::string from = x.tape_index() >= 0 ? std::string("n") : leaf_ids[x.impl_ptr().get()];
      if (x.tape_index() >= 0) from += std::to_string(x.tape_index());
      side += "  " + from + " -> " + id;
      if (e && k < e->sent.size() && e->sent[k].defined()) side += " [label=" + dot_label({summarize(e->sent[k])}) + "]";
      side += ";\n";
    }
  }
  close_cluster();
  return out + edges + "}\n";
}

// ---- gradient flow ----

std::vector<double> gradient_flow(const Tensor& loss, const std::vector<Tensor>& steps) {
  if (steps.empty()) throw ValueError("gradient_flow: no steps");
  if (!loss.defined() || loss.numel() != 1)
    throw ShapeError("gradient_flow: the loss must be one number, got " + (loss.defined() ? loss.shape().str() : "undefined"));
  for (std::size_t t = 0; t < steps.size(); ++t)
    if (!steps[t].defined() || !steps[t].requires_grad())
      throw TapeError("gradient_flow: step " + std::to_string(t) +
                      " is not a recorded value the loss can depend on (undefined, a constant, or made under no_grad)");
  const std::vector<Tensor> g = grad({loss}, steps, {}, SweepOptions{.retain = true}, /*allow_unused=*/true);
  std::vector<double> out(steps.size(), 0.0);
  for (std::size_t t = 0; t < steps.size(); ++t) {
    if (!g[t].defined()) continue;
    double s = 0;
    for (double v : g[t].to_vector()) s += v * v;
    out[t] = std::sqrt(s);
  }
  return out;
}

// ---- statistics ----

TapeStats tape_stats(const Tape& tape) {
  TapeStats s;
  std::map<std::string, OpStats> by_op;
  for (const Node& n : tape.entries()) {
    std::size_t bytes = 0;
    for (std::size_t k = 0; k < n.num_outputs(); ++k)  // a value dropped early (Tape::drop_unread) holds none
      if (!n.output_at(k).value_dropped()) bytes += n.output_at(k).numel() * dtype_size(n.output_at(k).dtype());
    OpStats& o = by_op[n.op];
    o.op = n.op;
    ++o.count;
    o.bytes += bytes;
    ++s.entries;
    s.bytes += bytes;
  }
  for (auto& [op, o] : by_op) s.per_op.push_back(std::move(o));
  std::stable_sort(s.per_op.begin(), s.per_op.end(),
                   [](const OpStats& a, const OpStats& b) { return a.bytes > b.bytes; });
  return s;
}

std::string TapeStats::str() const {
  std::string out = std::to_string(entries) + (entries == 1 ? " entry, " : " entries, ") + std::to_string(bytes) +
                    " bytes of values\n";
  if (per_op.empty()) return out;
  std::vector<std::vector<std::string>> rows{{"op", "count", "bytes"}};
  for (const OpStats& o : per_op) rows.push_back({o.op, std::to_string(o.count), std::to_string(o.bytes)});
  return out + table(rows, "  ", {false, true, true});
}

std::ostream& operator<<(std::ostream& os, const Tape& tape) { return os << print_tape(tape); }
std::ostream& operator<<(std::ostream& os, const TapeStats& stats) { return os << stats.str(); }

}  // namespace rwd
