// The tape as a web page: the library sweeps the tape (grad()'s way, .grad() untouched), lays the
// graph out, and writes both as JSON inside a page whose script draws and steps through them.
#include "html.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../core/atomic_file.hpp"
#include "../core/error.hpp"
#include "backward.hpp"
#include "inspect.hpp"

namespace rwd {

// In a namespace of its own inside the anonymous one: a unity build compiles this file together with
// inspect.cpp, whose helpers (width, …) live in the same anonymous namespace.
namespace {
namespace html_page {

// ---- JSON ----

// A JSON string.
std::string js(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      case '<': out += "\\u003c"; break;  // nothing in a value can close the <script> or open a comment
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string js(long v) { return std::to_string(v); }

// ---- layout ----

// Sizes in CSS pixels; the font is 12px monospace, about 7.2px a character.
constexpr double kChar = 7.2, kPadX = 16, kGapX = 26, kRowH = 92, kBandPad = 28, kBandGap = 22, kMargin = 20;
constexpr std::size_t kShortValue = 30;  // a node's value line, cut with … beyond this many characters

// Code points of a UTF-8 string (the width a monospace font gives it).
std::size_t width(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// The first `n` code points, with … when cut.
std::string cut(const std::string& s, std::size_t n) {
  if (width(s) <= n) return s;
  std::size_t bytes = 0, seen = 0;
  while (bytes < s.size() && seen < n - 1) {
    ++bytes;
    while (bytes < s.size() && (static_cast<unsigned char>(s[bytes]) & 0xC0) == 0x80) ++bytes;
    ++seen;
  }
  return s.substr(0, bytes) + "…";
}

struct Box {
  double x = 0, y = 0, w = 0, h = 0;
  double cx() const { return x + w / 2; }
};

double box_width(std::initializer_list<std::string> lines) {
  std::size_t n = 0;
  for (const std::string& l : lines) n = std::max(n, width(l));
  return std::round(kPadX + kChar * static_cast<double>(n));
}

struct Leaf {
  Tensor t;
  std::string name;
  Box box;
  std::size_t band = 0;                          // where it is drawn
  std::map<std::size_t, Box> refs;               // its dashed references in later bands
  std::vector<double> grad;                      // what the sweep has sent it so far
  std::size_t widest = 0;                        // its widest "grad …" line, for the box's width
};

struct Band {
  std::int64_t t = -1;  // the time step, −1 for entries outside a recurrent layer
  std::size_t first = 0, last = 0;  // entries [first, last)
  Box box;
};

// "gradcheck: ok …" / "gradcheck: FAILED …" for the input of the report named `name`; "" if none.
std::string verdict(const GradcheckReport* report, const std::string& name) {
  if (!report || name.empty()) return "";
  for (const InputReport& r : report->inputs) {
    if (r.name != name) continue;
    char buf[256];
    if (r.ok()) {
      std::snprintf(buf, sizeof buf, "%s: ok, %zu elements, max |analytic − numeric| = %.3g", report->what.c_str(),
                    r.n_checked, r.max_abs_err);
      return buf;
    }
    std::string s;
    std::snprintf(buf, sizeof buf, "%s: FAILED at %zu of %zu elements, max |analytic − numeric| = %.3g",
                  report->what.c_str(), r.n_failed, r.n_checked, r.max_abs_err);
    s = buf;
    for (const ElementError& e : r.worst) {
      std::string at;
      for (std::size_t k = 0; k < e.index.size(); ++k) at += (k ? ", " : "") + std::to_string(e.index[k]);
      std::snprintf(buf, sizeof buf, "\n  [%s] (value %.4g): analytic %.6g, numeric %.6g", at.c_str(), e.value,
                    e.analytic, e.numeric);
      s += buf;
    }
    return s;
  }
  return "";
}

std::string page(const std::string& title, const std::string& data);

// The page for the tape of `root` (see tape_html).
std::string build(const Tensor& root, const HtmlOptions& options) {
  if (!root.defined()) throw ValueError("write_html: the root is an undefined tensor");
  if (root.tape_index() < 0)
    throw TapeError("write_html: the root " + operand_label(root) +
                    " is not a recorded value (a leaf, or its tape was cleared by a backward()): write the page "
                    "before the backward, from the value the tape recorded");
  if (!options.seed.defined() && root.numel() != 1)
    throw ShapeError("write_html: the root has shape " + root.shape().str() +
                     "; pass HtmlOptions::seed of that shape, or reduce the root to one number first");
  // The sweep first, grad()'s way: targets given (none), so nothing reaches .grad(); retained, so the
  // tape and its values stay for the forward half of the page and for the caller.
  const std::vector<Tensor> no_targets;
  ReverseSweep sweep({root}, {options.seed}, SweepOptions{.retain = true}, &no_targets);
  const Tape& tape = sweep.tape();
  const std::size_t n = tape.size();

  // ---- the leaves, in order of first use ----
  std::vector<Leaf> leaves;
  std::unordered_map<const void*, std::size_t> leaf_of;
  for (std::size_t i = 0; i < n; ++i)
    for (const Tensor& x : tape[i].inputs)
      if (x.tape_index() < 0 && leaf_of.try_emplace(x.impl_ptr().get(), leaves.size()).second)
        leaves.push_back({x, operand_label(x), {}, 0, {}, {}});
  auto leaf_index = [&](const Tensor& x) { return leaf_of.at(x.impl_ptr().get()); };

  // ---- the reverse sweep, step by step ----
  std::string steps = "[";
  std::vector<std::string> adjoint(n);  // what each entry received, for its details
  for (bool first = true; sweep.step(); first = false) {
    const auto i = static_cast<std::size_t>(sweep.current());
    const Node& node = tape[i];
    std::string dy;
    for (const Tensor& a : sweep.adjoints_in()) dy += (dy.empty() ? "" : "; ") + shaped_value(a);
    adjoint[i] = dy;
    std::string sent = "[", grads = "[";
    const std::vector<Tensor>& out = sweep.adjoints_out();
    for (std::size_t k = 0; k < node.inputs.size(); ++k) {
      const Tensor& x = node.inputs[k];
      const Tensor g = k < out.size() ? out[k] : Tensor();
      const std::string what = g.defined() ? shaped_value(g) : x.requires_grad() ? "— (nothing sent)" : "— (constant)";
      if (k) sent += ",";
      sent.append("[").append(js(operand_label(x))).append(",").append(js(what)).append("]");
      if (!g.defined() || x.tape_index() >= 0) continue;
      // A leaf's gradient so far: the sum of what it was sent, the accumulate rule made visible.
      Leaf& l = leaves[leaf_index(x)];
      const std::vector<double> v = g.to_vector();
      if (l.grad.empty()) l.grad.assign(v.size(), 0.0);
      for (std::size_t e = 0; e < v.size() && e < l.grad.size(); ++e) l.grad[e] += v[e];
      const Tensor total = Tensor::from_vector(l.grad, x.shape(), float64);
      l.widest = std::max(l.widest, width("grad " + shaped_value(total)));
      grads += (grads.size() > 1 ? "," : "") + std::string("[") + js(static_cast<long>(leaf_index(x))) + "," +
               js(shaped_value(total)) + "," + js(shaped_value(total, options.full_values)) + "]";
    }
    steps += std::string(first ? "" : ",\n") + "{\"e\":" + js(static_cast<long>(i)) + ",\"dy\":" + js(dy) +
             ",\"rule\":" + js(rule_with_operands(tape, i)) + ",\"sent\":" + sent + "],\"grads\":" + grads + "]}";
  }
  steps += "]";

  // ---- bands: runs of entries recorded in one time step ----
  std::vector<Band> bands;
  std::vector<std::size_t> band_of(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t t = tape.step_of(i);
    if (bands.empty() || bands.back().t != t) bands.push_back({t, i, i, {}});
    bands.back().last = i + 1;
    band_of[i] = bands.size() - 1;
  }

  // ---- rows and positions ----
  std::vector<Box> box(n);
  std::vector<std::string> short_value(n), node_label(n);
  double y = kMargin, right = 0;
  for (std::size_t b = 0; b < bands.size(); ++b) {
    Band& band = bands[b];
    const double top = y + (band.t >= 0 ? kBandPad : 0);
    // Row 0: the leaves this band uses (drawn here at their first use, else as a reference).
    double cursor = kMargin + 12;
    bool has_leaves = false;
    auto place_leaf = [&](const Tensor& x) {
      Leaf& l = leaves[leaf_index(x)];
      if (l.box.w > 0 && (l.band == b || l.refs.count(b))) return;
      const bool grad = x.requires_grad();
      Box at{cursor, top, std::max(box_width({l.name, x.shape().str()}), std::round(kPadX + kChar * static_cast<double>(l.widest))),
             grad ? 52.0 : 38.0};
      if (l.box.w == 0) {
        l.box = at;
        l.band = b;
      } else {
        l.refs[b] = at;
      }
      cursor += at.w + kGapX;
      right = std::max(right, cursor);
      has_leaves = true;
    };
    for (std::size_t i = band.first; i < band.last; ++i)
      for (const Tensor& x : tape[i].inputs)
        if (x.tape_index() < 0) place_leaf(x);
    // Entries: one row below the lowest input in this band, under the mean of the inputs.
    std::vector<std::size_t> row(band.last - band.first, 0);
    std::map<std::size_t, double> row_cursor;
    std::size_t rows = has_leaves ? 1 : 0;
    for (std::size_t i = band.first; i < band.last; ++i) {
      const Node& node = tape[i];
      std::size_t r = has_leaves ? 1 : 0;
      double sum = 0;
      std::size_t count = 0;
      for (const Tensor& x : node.inputs) {
        const std::int64_t k = x.tape_index();
        if (k >= 0 && static_cast<std::size_t>(k) >= band.first) r = std::max(r, row[k - band.first] + 1);
        if (k >= 0) {
          sum += box[k].cx();
          ++count;
        } else {
          const Leaf& l = leaves[leaf_index(x)];
          sum += (l.band == b ? l.box : l.refs.at(b)).cx();
          ++count;
        }
      }
      row[i - band.first] = r;
      rows = std::max(rows, r + 1);
      // "#8:h1 tanh": the entry's label as the explain views write it, then the op.
      node_label[i] = std::string("#").append(std::to_string(i));
      if (!node.output.name().empty()) node_label[i].append(":").append(node.output.name());
      node_label[i].append(" ").append(node.op);
      short_value[i] = cut(shaped_value(node.output), kShortValue);
      const double w = box_width({node_label[i], short_value[i]});
      const double want = count ? sum / static_cast<double>(count) - w / 2 : kMargin + 12;
      double& c = row_cursor.try_emplace(r, kMargin + 12).first->second;
      const double x = std::round(std::max(c, want));
      box[i] = {x, top + static_cast<double>(r) * kRowH, w, 38};
      c = x + w + kGapX;
      right = std::max(right, c);
    }
    const double bottom = top + static_cast<double>(rows) * kRowH - (kRowH - 52);
    band.box = {kMargin - 8, y, 0, bottom - y + 10};
    y = bottom + 10 + kBandGap;
  }
  for (Band& band : bands) band.box.w = right - band.box.x;

  // ---- the data ----
  std::string data = "{\"title\":" + js(options.title) + ",\n\"width\":" + js(std::lround(right + kMargin)) +
                     ",\"height\":" + js(std::lround(y + kMargin)) + ",\n\"bands\":[";
  for (std::size_t b = 0; b < bands.size(); ++b) {
    const Band& band = bands[b];
    data += std::string(b ? "," : "") + "[" + js(band.t) + "," + js(std::lround(band.box.x)) + "," +
            js(std::lround(band.box.y)) + "," + js(std::lround(band.box.w)) + "," + js(std::lround(band.box.h)) + "]";
  }
  auto xywh = [](const Box& b) {
    return js(std::lround(b.x)) + "," + js(std::lround(b.y)) + "," + js(std::lround(b.w)) + "," + js(std::lround(b.h));
  };
  data += "],\n\"entries\":[";
  for (std::size_t i = 0; i < n; ++i) {
    const Node& node = tape[i];
    std::vector<std::string> ins;
    for (const Tensor& x : node.inputs) {
      const std::int64_t k = x.tape_index();
      ins.push_back(k >= 0 ? "\"e" + std::to_string(k) + "\"" : "\"l" + std::to_string(leaf_index(x)) + "\"");
    }
    std::string in = "[", shapes = "[";
    for (std::size_t k = 0; k < ins.size(); ++k) {
      in += (k ? "," : "") + ins[k];
      if (k) shapes += ",";
      shapes += js(node.inputs[k].shape().str());
    }
    std::string value;
    for (std::size_t k = 0; k < node.num_outputs(); ++k)
      value += (k ? "; " : "") + shaped_value(node.output_at(k), options.full_values);
    data += std::string(i ? ",\n" : "\n") + "{\"label\":" + js(node_label[i]) + ",\"head\":" +
            js(entry_headline(tape, i)) + ",\"short\":" + js(short_value[i]) + ",\"value\":" + js(value) +
            ",\"adj\":" + js(adjoint[i]) + ",\"in\":" + in + "],\"shapes\":" + shapes + "],\"box\":[" + xywh(box[i]) +
            "],\"band\":" + js(static_cast<long>(band_of[i])) + "}";
  }
  data += "],\n\"leaves\":[";
  for (std::size_t j = 0; j < leaves.size(); ++j) {
    const Leaf& l = leaves[j];
    std::string refs = "[";
    for (const auto& [b, at] : l.refs) {
      if (refs.size() > 1) refs += ",";
      refs.append("[").append(js(static_cast<long>(b))).append(",").append(xywh(at)).append("]");
    }
    data += std::string(j ? ",\n" : "\n") + "{\"label\":" + js(l.name) + ",\"shape\":" + js(l.t.shape().str()) +
            ",\"grad\":" + (l.t.requires_grad() ? "true" : "false") + ",\"value\":" +
            js(shaped_value(l.t, options.full_values)) + ",\"check\":" + js(verdict(options.gradcheck, l.t.name())) +
            ",\"box\":[" + xywh(l.box) + "],\"band\":" + js(static_cast<long>(l.band)) + ",\"refs\":" + refs + "]}";
  }
  data += "],\n\"steps\":" + steps + "}";
  return page(options.title, data);
}

}  // namespace html_page
}  // namespace

std::string tape_html(const Tensor& root, const HtmlOptions& options) { return html_page::build(root, options); }

void write_html(const std::string& path, const Tensor& root, const HtmlOptions& options) {
  write_file_atomic(path, tape_html(root, options));
}

namespace {
namespace html_page {

// The page: a frame of HTML and CSS, the data, and the script that draws and steps through it.
std::string page(const std::string& title, const std::string& data) {
  std::string escaped;
  for (char c : title) escaped += c == '<' ? "&lt;" : c == '&' ? "&amp;" : std::string(1, c);
  return R"PAGE(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="rewind write_html">
<title>)PAGE" + escaped +
         R"PAGE(</title>
<style>
:root { --ink:#1d2330; --dim:#8a93a6; --accent:#c2410c; --fwd:#2563eb; --grad:#15803d; --bg:#fbfbfd; }
* { box-sizing:border-box; }
body { margin:0; font:14px/1.4 system-ui, sans-serif; color:var(--ink); background:var(--bg);
       display:flex; flex-direction:column; height:100vh; }
header { padding:8px 14px; border-bottom:1px solid #dde1ea; display:flex; gap:14px; align-items:center; flex-wrap:wrap; }
header h1 { font-size:16px; margin:0; font-weight:600; }
button { font:inherit; padding:3px 10px; border:1px solid #b9c0cf; border-radius:5px; background:#fff; cursor:pointer; }
button:hover { background:#eef2fb; }
#where { font-family:monospace; }
#phase { font-weight:600; }
main { flex:1; display:flex; min-height:0; }
#graph { flex:1; overflow:auto; background:#fff; }
aside { width:470px; overflow:auto; border-left:1px solid #dde1ea; padding:10px 14px; }
aside h2 { font-size:13px; text-transform:uppercase; letter-spacing:.04em; color:var(--dim); margin:14px 0 4px; }
.mono, pre, td { font-family:monospace; font-size:12.5px; }
pre { white-space:pre-wrap; margin:0; }
#rule { color:var(--accent); font-weight:600; }
table { border-collapse:collapse; width:100%; }
td { padding:2px 6px 2px 0; vertical-align:top; }
#leaves td.g { color:var(--grad); }
.help { color:var(--dim); font-size:12.5px; }
svg text { font:12px monospace; fill:var(--ink); pointer-events:none; }
svg .band rect { fill:#f5f7fb; stroke:#c9cfdc; rx:10; }
svg .band text { fill:var(--dim); font-weight:bold; }
svg .node rect { fill:#fff; stroke:#7d879c; stroke-width:1.2; }
svg .node { cursor:pointer; }
svg .leaf rect { rx:16; fill:#e8f0fb; }
svg .leaf.const rect { fill:#f3f3f3; stroke:#b5b5b5; }
svg .leaf.ref rect { stroke-dasharray:4 3; fill:#f7faff; }
svg .entry.future { opacity:.28; }
svg .entry.future .val { visibility:hidden; }
svg .entry.fresh rect { fill:#eaf1ff; stroke:var(--fwd); }
svg .entry.swept rect { fill:#f1f8f1; stroke:#7fb08a; }
svg .entry.received rect { stroke:var(--accent); stroke-dasharray:5 3; }
svg .node.current rect { stroke:var(--accent); stroke-width:3.5; fill:#fff3ea; }
svg .node.picked rect { stroke:#7c3aed; stroke-width:3; }
svg .leaf.filled rect { fill:#dcfce7; stroke:var(--grad); }
svg .gradline { fill:var(--grad); }
svg path.edge { fill:none; stroke:#aab2c3; stroke-width:1.2; }
svg path.edge.far { stroke-opacity:.35; }
svg path.edge.in { stroke:var(--fwd); stroke-width:2.2; stroke-opacity:1; }
svg path.edge.out { stroke:var(--accent); stroke-width:2.6; stroke-opacity:1; }
svg text.shape { font-size:10px; fill:#8a93a6; }
svg marker path { fill:#aab2c3; }
</style></head>
<body>
<header>
  <h1 id="title"></h1>
  <span>
    <button id="first" title="Home">◀◀ start</button>
    <button id="prev" title="←">◀ prev</button>
    <button id="next" title="→">next ▶</button>
    <button id="last" title="End">end ▶▶</button>
  </span>
  <span id="where">step <span id="step-num">0</span> / <span id="step-total">0</span></span>
  <span id="phase"></span>
  <span class="help">← → step · Home / End · click a node for its value and adjoint · the address keeps the step</span>
</header>
<main>
  <div id="graph"></div>
  <aside>
    <h2>now</h2>
    <div id="current" class="mono"></div>
    <div id="say" class="help"></div>
    <h2>rule</h2>
    <div id="rule" class="mono"></div>
    <h2>adjoint arriving (dy)</h2>
    <pre id="dy"></pre>
    <h2>adjoints sent (added to each input's)</h2>
    <table id="sent"></table>
    <h2>leaves' .grad so far</h2>
    <table id="leaves"></table>
    <h2>clicked</h2>
    <div id="details" class="help">click a node</div>
  </aside>
</main>
<script type="application/json" id="tape">)PAGE" +
         data + R"PAGE(</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("tape").textContent);
const N = D.entries.length, R = D.steps.length, LAST = N + R;
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const stepOf = new Array(N).fill(-1);  // the reverse step that processes each entry
D.steps.forEach((s, r) => { stepOf[s.e] = r; });

// ---- drawing, once ----
function boxOf(ref) {  // "e4", "l2" or "l2@5" (leaf 2's reference in band 5)
  if (ref[0] === "e") return D.entries[+ref.slice(1)].box;
  const [j, b] = ref.slice(1).split("@").map(Number);
  const l = D.leaves[j];
  if (b === undefined || b === l.band) return l.box;
  return l.refs.find((r) => r[0] === b).slice(1);
}
function draw() {
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${D.width}" height="${D.height}" id="svg">`,
    `<defs><marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" ` +
    `markerUnits="userSpaceOnUse" orient="auto">` +
    `<path d="M0,0 L8,4 L0,8 z"/></marker></defs>`];
  D.bands.forEach(([t, x, y, w, h]) => {
    if (t >= 0) out.push(`<g class="band"><rect x="${x}" y="${y}" width="${w}" height="${h}"/>` +
                         `<text x="${x + 10}" y="${y + 17}">t=${t}</text></g>`);
  });
  D.entries.forEach((e, i) => {
    const band = e.band;
    e.in.forEach((ref, k) => {
      if (ref[0] === "l" && D.leaves[+ref.slice(1)].band !== band) ref += "@" + band;
      const [x1, y1, w1, h1] = boxOf(ref), [x2, y2, w2] = e.box;
      const sx = x1 + w1 / 2, sy = y1 + h1, tx = x2 + w2 * (k + 1) / (e.in.length + 1), ty = y2;
      const far = ty - sy > 2.5 * 92, m = Math.min(60, (ty - sy) / 2);
      out.push(`<path class="edge${far ? " far" : ""}" id="edge-${i}-${k}" marker-end="url(#arrow)" ` +
               `d="M${sx},${sy} C${sx},${sy + m} ${tx},${ty - m} ${tx},${ty - 1}"/>`);
      // The shape beside the arrow, on the outer side, so that two inputs' labels do not collide.
      const left = 2 * k + 1 < e.in.length;
      out.push(`<text class="shape" x="${left ? tx - 4 : tx + 4}" y="${ty - 9}"${left ? ' text-anchor="end"' : ""}>` +
               `${esc(e.shapes[k])}</text>`);
    });
  });
  const leafBox = (j, cls, [x, y, w, h], id) => {
    const l = D.leaves[j];
    return `<g class="node leaf leaf-${j}${l.grad ? "" : " const"}${cls}" data-leaf="${j}"${id ? ` id="${id}"` : ""}>` +
      `<rect x="${x}" y="${y}" width="${w}" height="${h}"/>` +
      `<text x="${x + 8}" y="${y + 15}">${esc(l.label)}</text>` +
      `<text x="${x + 8}" y="${y + 30}">${esc(l.shape)}</text>` +
      (l.grad ? `<text class="gradline" x="${x + 8}" y="${y + 45}"></text>` : "") + `</g>`;
  };
  D.leaves.forEach((l, j) => {
    out.push(leafBox(j, "", l.box, "l" + j));
    l.refs.forEach(([b, ...xywh]) => out.push(leafBox(j, " ref", xywh)));
  });
  D.entries.forEach((e, i) => {
    const [x, y, w, h] = e.box;
    out.push(`<g class="node entry" id="n${i}" data-entry="${i}"><rect x="${x}" y="${y}" width="${w}" height="${h}" rx="4"/>` +
             `<text x="${x + 8}" y="${y + 15}">${esc(e.label)}</text>` +
             `<text class="val" x="${x + 8}" y="${y + 30}">${esc(e.short)}</text></g>`);
  });
  out.push("</svg>");
  $("graph").innerHTML = out.join("");
}

// ---- state at step s: 0 the start, 1…N the forward pass, N+1…N+R the reverse sweep ----
let step = 0, picked = null;
const entryNodes = [], leafNodes = [];
function phase(s) { return s === 0 ? "start" : s <= N ? "forward" : "reverse"; }
function show(s) {
  step = Math.max(0, Math.min(LAST, s));
  const ph = phase(step), fwd = ph === "forward" ? step - 1 : -1, r = ph === "reverse" ? step - N - 1 : -1;
  $("step-num").textContent = step;
  $("phase").textContent = ph === "start" ? "start: nothing computed yet" :
    ph === "forward" ? `forward pass: entry ${fwd + 1} of ${N}` : `reverse sweep: step ${r + 1} of ${R}`;
  // Entries: computed, current, swept, or holding an adjoint not yet used.
  const received = new Set();
  for (let q = 0; q < r; ++q) D.entries[D.steps[q].e].in.forEach((ref, k) => {
    if (ref[0] === "e" && D.steps[q].sent[k][1][0] !== "—") received.add(+ref.slice(1));
  });
  entryNodes.forEach((g, i) => {
    const cl = g.classList;
    cl.toggle("future", ph === "start" || (ph === "forward" && i > fwd));
    cl.toggle("fresh", ph === "forward" && i < fwd);
    cl.toggle("swept", r >= 0 && stepOf[i] >= 0 && stepOf[i] < r);
    cl.toggle("received", r >= 0 && received.has(i) && !(stepOf[i] >= 0 && stepOf[i] <= r));
    cl.toggle("current", i === fwd || (r >= 0 && D.steps[r].e === i));
  });
  document.querySelectorAll("path.edge.in, path.edge.out").forEach((p) => p.classList.remove("in", "out"));
  const cur = fwd >= 0 ? fwd : r >= 0 ? D.steps[r].e : -1;
  if (cur >= 0) D.entries[cur].in.forEach((_, k) => $(`edge-${cur}-${k}`).classList.add(fwd >= 0 ? "in" : "out"));
  // Leaves: the sum of what they were sent up to this step.
  const grad = D.leaves.map(() => null);
  for (let q = 0; q <= r; ++q) D.steps[q].grads.forEach(([j, short, full]) => { grad[j] = [short, full]; });
  leafNodes.forEach(([j, g]) => {
    g.classList.toggle("filled", grad[j] !== null);
    const t = g.querySelector(".gradline");
    if (t) t.textContent = grad[j] ? "grad " + grad[j][0] : "";
  });
  $("leaves").innerHTML = D.leaves.map((l, j) => l.grad ?
    `<tr id="grad-${j}"><td>${esc(l.label)}</td><td class="g">${grad[j] ? esc(grad[j][0]) : "—"}</td></tr>` : "").join("");
  // The panel.
  const e = cur >= 0 ? D.entries[cur] : null;
  $("current").textContent = e ? e.head : "—";
  $("current").dataset.entry = cur;
  if (fwd >= 0) {
    $("say").textContent = `computes its value from its inputs: ${e.value}`;
    $("rule").textContent = "—";
    $("dy").textContent = "—";
    $("sent").innerHTML = "";
  } else if (r >= 0) {
    const st = D.steps[r];
    $("say").textContent = "every later entry that used it has sent its share, so dy is complete; its rule turns " +
                           "dy into adjoints for its inputs, which are added (+=) to what they already hold";
    $("rule").textContent = st.rule;
    $("dy").textContent = st.dy;
    $("sent").innerHTML = st.sent.map(([who, what]) => `<tr><td>→ ${esc(who)}</td><td>${esc(what)}</td></tr>`).join("");
  } else {
    $("say").textContent = `${N} entries recorded; press → to run the forward pass, then the reverse sweep`;
    $("rule").textContent = "—";
    $("dy").textContent = "—";
    $("sent").innerHTML = "";
  }
  if (picked) details(picked, grad);
  if (cur >= 0) reveal(entryNodes[cur]);
  const hash = "#step=" + step;
  if (location.hash !== hash) {
    try { history.replaceState(null, "", hash); } catch (err) { location.hash = hash; }
  }
}
function reveal(g) {  // scroll the graph so that the current node is in view
  const box = $("graph"), [x, y, w, h] = D.entries[+g.dataset.entry].box;
  if (y < box.scrollTop + 20 || y + h > box.scrollTop + box.clientHeight - 20) box.scrollTop = y - box.clientHeight / 3;
  if (x < box.scrollLeft || x + w > box.scrollLeft + box.clientWidth) box.scrollLeft = x - 40;
}
function details(ref, grad) {
  picked = ref;
  document.querySelectorAll(".picked").forEach((g) => g.classList.remove("picked"));
  let html;
  if (ref[0] === "e") {
    const i = +ref.slice(1), e = D.entries[i];
    $("n" + i).classList.add("picked");
    const r = phase(step) === "reverse" ? step - N - 1 : -1;
    const adj = stepOf[i] < 0 ? "— (no adjoint reached it)" : r >= stepOf[i] ? e.adj : "— (the sweep has not reached it yet)";
    const val = phase(step) === "start" || (phase(step) === "forward" && i >= step) ? "— (not computed yet)" : e.value;
    html = `<div>${esc(e.head)}</div><table><tr><td>value</td><td>${esc(val)}</td></tr>` +
           `<tr><td>adjoint</td><td>${esc(adj)}</td></tr></table>`;
  } else {
    const j = +ref.slice(1), l = D.leaves[j];
    document.querySelectorAll(".leaf-" + j).forEach((g) => g.classList.add("picked"));
    html = `<div>${esc(l.label)} ${esc(l.shape)} ${l.grad ? "(a leaf that takes a gradient)" : "(a constant)"}</div>` +
           `<table><tr><td>value</td><td>${esc(l.value)}</td></tr>` +
           (l.grad ? `<tr><td>.grad</td><td>${grad && grad[j] ? esc(grad[j][1]) : "— (nothing sent yet)"}</td></tr>` : "") +
           `</table>` + (l.check ? `<pre id="check">${esc(l.check)}</pre>` : "");
  }
  $("details").innerHTML = html;
  $("details").className = "mono";
}

function fromHash() {
  const m = /step=(\d+)/.exec(location.hash);
  return m ? +m[1] : 0;
}
draw();
document.querySelectorAll("g.entry").forEach((g) => { entryNodes[+g.dataset.entry] = g; });
document.querySelectorAll("g.leaf").forEach((g) => leafNodes.push([+g.dataset.leaf, g]));
$("title").textContent = D.title;
$("step-total").textContent = LAST;
$("first").onclick = () => show(0);
$("prev").onclick = () => show(step - 1);
$("next").onclick = () => show(step + 1);
$("last").onclick = () => show(LAST);
document.addEventListener("keydown", (ev) => {
  if (ev.key === "ArrowRight") show(step + 1);
  else if (ev.key === "ArrowLeft") show(step - 1);
  else if (ev.key === "Home") show(0);
  else if (ev.key === "End") show(LAST);
  else return;
  ev.preventDefault();
});
$("graph").addEventListener("click", (ev) => {
  const g = ev.target.closest(".node");
  if (!g) return;
  details(g.dataset.entry !== undefined ? "e" + g.dataset.entry : "l" + g.dataset.leaf, null);
  show(step);
});
window.addEventListener("hashchange", () => { if (fromHash() !== step) show(fromHash()); });
show(fromHash());
document.body.dataset.ready = "1";
</script>
</body></html>
)PAGE";
}

}  // namespace html_page
}  // namespace

}  // namespace rwd
