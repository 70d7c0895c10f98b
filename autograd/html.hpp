// rewind/autograd/html.hpp — a recorded tape as one interactive web page: watch the forward pass and
// then the reverse sweep, one entry at a time.
//
//   Tensor loss = …;                                   // recorded on the current tape
//   write_html("tape.html", loss);                     // open it in any browser, no network needed
//   write_html("tape.html", loss, {.gradcheck = &report});  // with gradcheck's verdict per leaf
//
// The page holds the graph of entries and leaves, top to bottom, one box per time step of a
// recurrent layer (Tape::mark_step, labelled t=0, t=1, …), the shape of each value on the edge that
// carries it. Its controls (buttons, ← and →, Home and End) step through the forward pass — each
// entry computing its value — and then through the reverse sweep, exactly as ReverseSweep visits it:
// the current entry highlighted, its rule with its own operands (rule_with_operands, the text the
// explain views print), the adjoint that arrived (dy), the adjoints it sent, and the leaves' gradients
// filling up. Clicking a node shows its value and adjoint (shaped_value: up to `full_values` elements
// in full, nested by shape, else summarised), and for a leaf gradcheck's verdict when one was given.
// The step is in the address (`tape.html#step=17`), so a teacher can link to a moment.
//
// What the page costs the model: nothing. It sweeps the tape the way grad() does — the leaves'
// .grad() is left as it was — and retains it, so a backward() may follow. The root's tape must still
// hold its entries (write the page before a backward() that clears it).
//
// Layout: rewind's own, not Graphviz's. Time steps are the natural layers of a recurrent tape: one
// band per step, and inside a band each entry one row below the lowest of its inputs, placed under
// the mean of its inputs' positions. A weight used at every step is drawn once, at its first use,
// and as a dashed reference in every later band, so no edge crosses the whole unroll for it. Why not
// `dot -Tsvg`: the library must work without Graphviz installed, and the fallback for a missing dot
// would have to be a layout of our own anyway — so it is the only one; it is linear in the tape's
// size (milliseconds for a 200-step LSTM's 3,000 entries, where dot took 3.8 s of CPU on to_dot's
// graph of the same tape); and every step of an unroll is drawn the same way, so BPTT's repeated
// block looks repeated.
//
// The page is self-contained: inline CSS, an inline script that draws the SVG from the data the
// library wrote next to it (JSON), no fonts, images or requests.
#pragma once

#include <cstddef>
#include <string>

#include "gradcheck.hpp"
#include "tape.hpp"

namespace rwd {

/// What write_html puts on the page.
struct HtmlOptions {
  std::string title = "rewind: the tape, forward and backward";  ///< the page's heading
  Tensor seed{};                             ///< the root's seed (default: 1 for a one-element root)
  const GradcheckReport* gradcheck = nullptr;  ///< its verdict shown per leaf (matched by name)
  std::size_t full_values = 64;              ///< a clicked value up to this many elements in full
};

/// The page for the tape that recorded `root`, as text (see the top of this file).
std::string tape_html(const Tensor& root, const HtmlOptions& options = {});

/// Writes tape_html(root, options) to `path`, atomically; throws IOError naming the file.
void write_html(const std::string& path, const Tensor& root, const HtmlOptions& options = {});

}  // namespace rwd
