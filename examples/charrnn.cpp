// examples/charrnn.cpp — a character-level language model, in two parts.
//
// 1. The PyTorch tutorial's toy (seed 004): three sentences padded with spaces to 15 characters,
//    one-hot characters into RNN(17 => 12, tanh) → Dense(12 => 17), trained to predict the next
//    character with cross-entropy and Adam (lr 0.01, 100 epochs, the whole batch each epoch). Greedy
//    sampling from "good" must give back "good i am fine", as it does in the tutorial.
//
// 2. A real corpus: six files of Debian's fortunes packages (fortunes-min holds the first two,
//    fortunes the rest) — `fortunes`, `literature`,
//    `wisdom`, `humorists`, `platitudes` and `miscellaneous`, about 265 KB of quotations and jokes —, split into train and validation by fortune (whole fortunes go to one side or the other).
//    Characters → Embedding(V => 48) → LSTM(48 => 256) → Dense(256 => V), cross-entropy, Adam (lr 2e-3,
//    1e-3 from epoch 9 on; 12 epochs), the gradients clipped to norm 5. Truncated BPTT in fixed windows: the text is laid out as 32
//    parallel streams, each window is 64 characters of every stream, and the LSTM's state is carried
//    from one window to the next (its value, not its history). Validation runs the same way over the
//    held-out fortunes and reports bits per character (mean cross-entropy in nats / ln 2). After each
//    epoch it prints a sample drawn with temperature; at the end, samples at three temperatures.
//
//   charrnn [--quick] [--out DIR] [--seed N]
//   RESULT example=charrnn toy="good i am fine" val_bpc=…
#include "common/example.hpp"

#include <algorithm>
#include <fstream>
#include <iomanip>
#include <map>
#include <memory>
#include <numeric>
#include <set>

using namespace rwd;

namespace {

// ---------------------------------------------------------------------------------------------------
// Part 1: the tutorial's toy.
// ---------------------------------------------------------------------------------------------------

struct ToyResult {
  std::string sample;  // greedy continuation of "good" to 15 characters
  History history;
};

ToyResult toy(const ex::Args& args, Generator& gen) {
  std::vector<std::string> text = {"hey how are you", "good i am fine", "have a nice day"};
  std::set<char> charset;
  for (const auto& s : text) charset.insert(s.begin(), s.end());
  const std::vector<char> chars(charset.begin(), charset.end());  // sorted: the tutorial's order is a set's
  std::map<char, std::int64_t> index;
  for (std::size_t i = 0; i < chars.size(); ++i) index[chars[i]] = static_cast<std::int64_t>(i);
  const std::size_t V = chars.size();

  // Pad with spaces to the longest sentence; the input drops the last character, the target the first.
  std::size_t maxlen = 0;
  for (const auto& s : text) maxlen = std::max(maxlen, s.size());
  for (auto& s : text) s.resize(maxlen, ' ');
  const std::size_t T = maxlen - 1, B = text.size();

  // One-hot input (time, V, batch); labels in (t, b) order, the layout cross_entropy expects for
  // (time, classes, batch) logits with the class axis 1.
  std::vector<double> onehot(T * V * B, 0.0);
  Indices labels(T * B);
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t t = 0; t < T; ++t) {
      onehot[(t * V + static_cast<std::size_t>(index[text[b][t]])) * B + b] = 1.0;
      labels[t * B + b] = index[text[b][t + 1]];
    }
  const Tensor x = Tensor::from_vector(onehot, {T, V, B});

  // The tutorial's model: nn.RNN(17, 12, 1 layer) then nn.Linear(12, 17) on every step.
  auto rnn = std::make_shared<Recurrent>(RNN(V, 12, "tanh", CellOptions{}, gen));
  auto fc = std::make_shared<Dense>(12, V, Activation{}, true, Dtype::f32, gen);
  Chain model(rnn, TimeDistributed(fc));
  std::cout << "toy: " << B << " sentences padded to " << maxlen << ", vocabulary " << V << ", model "
            << model.repr() << " (" << model.num_parameters() << " parameters)\n";

  Adam opt(model.parameters(), {.lr = 0.01});
  ToyResult r;
  r.history = fit(opt, 1, [&](std::size_t, std::size_t) { return cross_entropy(model(x), labels, {.axis = 1}); },
                  {.epochs = 100, .on_epoch_end = [](const EpochRecord& e) {
                     if (e.epoch % 10 == 0)
                       std::cout << "  Epoch: " << e.epoch << "/100 ............. Loss: " << ex::num(e.loss, "%.4f")
                                 << "\n";
                   }});
  r.history.write_csv(args.path("toy_history.csv"));

  // Greedy sampling as in the tutorial's sample(model, 15, 'good'): feed the prefix, take the most
  // likely next character, append it, repeat. Stepping the stateful model one character at a time is
  // the same as the tutorial's re-running of the whole prefix.
  NoGradGuard no_grad;
  model.eval();
  reset(model);
  std::string out = "good";
  Tensor logits;
  auto feed = [&](char c) {
    std::vector<double> v(V, 0.0);
    v[static_cast<std::size_t>(index.at(c))] = 1.0;
    logits = model(Tensor::from_vector(v, {V, 1}));
  };
  for (char c : out) feed(c);
  while (out.size() < maxlen) {
    const std::vector<double> l = logits.to_vector();
    const char next = chars[static_cast<std::size_t>(std::max_element(l.begin(), l.end()) - l.begin())];
    out += next;
    feed(next);
  }
  r.sample = out;
  std::cout << "toy: sample(model, 15, 'good') = '" << out << "'\n\n";
  return r;
}

// ---------------------------------------------------------------------------------------------------
// Part 2: fortunes.
// ---------------------------------------------------------------------------------------------------

const char* const fortune_dir = "/usr/share/games/fortunes/";
const std::vector<std::string> fortune_files = {"fortunes",   "literature", "wisdom",
                                                 "humorists", "platitudes", "miscellaneous"};

/// The fortunes of one file (entries separated by lines holding only "%"), cleaned: overstrikes
/// ("x\bx" bold, "_\bx" underline) keep the last character, tabs become spaces, anything outside
/// printable ASCII and newline is dropped, trailing blank space is trimmed.
std::vector<std::string> read_fortunes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<std::string> entries;
  std::string line, entry;
  auto flush = [&] {
    while (!entry.empty() && (entry.back() == '\n' || entry.back() == ' ')) entry.pop_back();
    if (!entry.empty()) entries.push_back(entry);
    entry.clear();
  };
  while (std::getline(in, line)) {
    if (line == "%") {
      flush();
      continue;
    }
    std::string clean;
    for (char c : line) {
      if (c == '\b') {
        if (!clean.empty()) clean.pop_back();
      } else if (c == '\t') {
        clean += ' ';
      } else if (c >= 32 && c < 127) {
        clean += c;
      }
    }
    while (!clean.empty() && clean.back() == ' ') clean.pop_back();
    entry += clean + "\n";
  }
  flush();
  return entries;
}

/// Embedding → LSTM → Dense on every step.
struct CharLM {
  std::shared_ptr<Embedding> embed;
  std::shared_ptr<Recurrent> lstm;
  std::shared_ptr<Dense> head;
  std::vector<Tensor> parameters() const {
    std::vector<Tensor> p = embed->parameters();
    for (const auto* m : {static_cast<const Module*>(lstm.get()), static_cast<const Module*>(head.get())})
      for (const Tensor& t : m->parameters()) p.push_back(t);
    return p;
  }
  std::size_t num_parameters() const {
    return embed->num_parameters() + lstm->num_parameters() + head->num_parameters();
  }
};

/// Text laid out as `streams` parallel rows of equal length (the remainder is dropped), so that
/// window w of every stream follows window w−1 of the same stream.
struct Streams {
  std::vector<std::vector<std::int64_t>> rows;
  std::size_t length() const { return rows.empty() ? 0 : rows[0].size(); }
};

Streams make_streams(const std::vector<std::int64_t>& ids, std::size_t streams) {
  Streams s;
  const std::size_t len = ids.size() / streams;
  for (std::size_t b = 0; b < streams; ++b)
    s.rows.emplace_back(ids.begin() + static_cast<std::ptrdiff_t>(b * len),
                        ids.begin() + static_cast<std::ptrdiff_t>((b + 1) * len));
  return s;
}

/// The logits (T, V, B) of window [start, start+T) of every stream, from `state`, and the targets.
/// The state after the window is left in `state`, detached (its value, not its history).
Tensor window_loss(CharLM& m, const Streams& s, std::size_t start, std::size_t T, std::vector<State>& state) {
  const std::size_t B = s.rows.size();
  std::vector<Tensor> steps;
  Indices labels(T * B);
  for (std::size_t t = 0; t < T; ++t) {
    Indices ids(B);
    for (std::size_t b = 0; b < B; ++b) {
      ids[b] = s.rows[b][start + t];
      labels[t * B + b] = s.rows[b][start + t + 1];
    }
    steps.push_back((*m.embed)(ids));
  }
  Tensor hs = (*m.lstm)(steps, Tensor(), state);           // (T, H, B)
  state.clear();
  for (const State& st : m.lstm->final_states()) {
    State d;
    for (const Tensor& x : st) d.push_back(x.detach());
    state.push_back(d);
  }
  Tensor logits = TimeDistributed(m.head)(hs);             // (T, V, B)
  return cross_entropy(logits, labels, {.axis = 1});
}

/// Mean cross-entropy (nats per character) over every window of the streams, state carried along.
double evaluate(CharLM& m, const Streams& s, std::size_t T) {
  NoGradGuard no_grad;
  std::vector<State> state;
  double total = 0;
  std::size_t chars = 0;
  for (std::size_t start = 0; start + 1 < s.length(); start += T) {
    const std::size_t len = std::min(T, s.length() - 1 - start);
    total += window_loss(m, s, start, len, state).item() * static_cast<double>(len);
    chars += len;
  }
  return total / static_cast<double>(std::max<std::size_t>(chars, 1));
}

/// Draws `n` characters after `prime`, sampling softmax(logits / temperature).
std::string sample(CharLM& m, const std::vector<char>& chars, const std::map<char, std::int64_t>& index,
                   const std::string& prime, std::size_t n, double temperature, Generator& gen) {
  NoGradGuard no_grad;
  reset(*m.lstm);
  Tensor logits;
  auto feed = [&](char c) { logits = (*m.head)((*m.lstm)((*m.embed)(Indices{index.at(c)}))); };
  for (char c : prime) feed(c);
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    const std::vector<double> p = softmax(logits * (1.0 / temperature), 0).to_vector();
    double u = gen.uniform(), acc = 0;
    std::size_t k = 0;
    for (; k + 1 < p.size(); ++k) {
      acc += p[k];
      if (u < acc) break;
    }
    out += chars[k];
    feed(chars[k]);
  }
  reset(*m.lstm);
  return out;
}

}  // namespace

int run(int argc, char** argv) {
  ex::Args args(argc, argv, "charrnn");
  const auto start = std::chrono::steady_clock::now();
  Generator gen(args.seed);
  for (const auto& f : fortune_files)  // before part 1's training, not after it
    if (const std::string path = fortune_dir + f; !std::filesystem::exists(path)) {
      std::cerr << "charrnn: " << path << " is missing: install Debian's fortunes package "
                << "(apt-get install fortunes, which brings fortunes-min, the home of 'fortunes' and 'literature')\n";
      return 1;
    }

  // ---- part 1 ----
  const ToyResult toy_run = toy(args, gen);
  std::string toy_text = toy_run.sample;
  while (!toy_text.empty() && toy_text.back() == ' ') toy_text.pop_back();  // the padding
  const bool toy_ok = toy_text == "good i am fine";
  {
    ex::Series s{"train loss", {}, {}, "linespoints"};
    for (const auto& e : toy_run.history.epochs) {
      s.x.push_back(static_cast<double>(e.epoch));
      s.y.push_back(e.loss);
    }
    // The loss the tutorial printed every 10 epochs (PyTorch, its own random initialization).
    const ex::Series torch{"PyTorch tutorial",
                           {2.5228, 2.1118, 1.7116, 1.3229, 0.9832, 0.7112, 0.5081, 0.3617, 0.2649, 0.2016},
                           {10, 20, 30, 40, 50, 60, 70, 80, 90, 100},
                           "points"};
    ex::plot(args.path("toy_loss.png"), "charrnn toy: RNN(17 => 12), Adam lr 0.01", "epoch",
             "cross-entropy (nats)", {s, torch}, true);
  }

  // ---- part 2: data ----
  std::vector<std::string> entries;
  for (const auto& f : fortune_files) {
    const std::string path = fortune_dir + f;
    auto e = read_fortunes(path);
    std::cout << "corpus: " << path << ": " << e.size() << " fortunes\n";
    entries.insert(entries.end(), e.begin(), e.end());
  }
  // Split by fortune: a seeded shuffle, 10% of the fortunes held out.
  std::vector<std::size_t> order(entries.size());
  std::iota(order.begin(), order.end(), 0);
  for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[gen.integer(i)]);
  const std::size_t n_val = entries.size() / 10;
  std::vector<std::string> train_entries, val_entries;
  for (std::size_t i = 0; i < order.size(); ++i) (i < n_val ? val_entries : train_entries).push_back(entries[order[i]]);

  // The vocabulary: every character of the corpus (fortunes are separated by "%" lines, as in the files).
  std::set<char> charset{'%', '\n'};
  for (const auto& e : entries) charset.insert(e.begin(), e.end());
  const std::vector<char> chars(charset.begin(), charset.end());
  std::map<char, std::int64_t> index;
  for (std::size_t i = 0; i < chars.size(); ++i) index[chars[i]] = static_cast<std::int64_t>(i);
  const std::size_t V = chars.size();
  auto encode = [&](const std::vector<std::string>& es, std::size_t first) {
    std::vector<std::int64_t> ids;
    for (std::size_t k = 0; k < es.size(); ++k) {
      const std::string& e = es[(first + k) % es.size()];
      for (char c : e + "\n%\n") ids.push_back(index.at(c));
    }
    return ids;
  };

  // ---- part 2: the model and its budget ----
  const std::size_t E = 48, H = args.quick ? 64 : 256, B = 32, T = 64;
  const std::size_t epochs = args.quick ? 1 : 12;
  CharLM m{std::make_shared<Embedding>(V, E, Dtype::f32, gen),
           std::make_shared<Recurrent>(LSTM(E, H, LSTMOptions{}, gen)),
           std::make_shared<Dense>(H, V, Activation{}, true, Dtype::f32, gen)};
  const std::vector<std::int64_t> train_ids = encode(train_entries, 0);
  const Streams val = make_streams(encode(val_entries, 0), args.quick ? 4 : B);
  std::size_t batches = (train_ids.size() / B - 1) / T;
  if (args.quick) batches = std::min<std::size_t>(batches, 3);
  std::cout << "corpus: " << train_entries.size() << " training fortunes (" << train_ids.size() << " characters), "
            << val_entries.size() << " validation fortunes (" << val.length() * val.rows.size()
            << " characters), vocabulary " << V << "\n"
            << "model: " << m.embed->repr() << " → " << m.lstm->repr() << " → " << m.head->repr() << " ("
            << m.num_parameters() << " parameters); Adam lr 2e-3 (1e-3 after epoch 8), clip_norm 5, batch " << B << " streams × " << T
            << " steps, " << batches << " windows per epoch, " << epochs << " epochs\n";

  Adam opt(m.parameters(), {.lr = 2e-3});
  Streams train;
  std::vector<State> state;
  std::vector<double> val_bpc;
  Generator sample_gen(args.seed + 1);
  std::ofstream samples_file(args.path("samples.txt"));
  History h = fit(
      opt, batches,
      [&](std::size_t epoch, std::size_t b) {
        if (b == 0) {  // each epoch starts the streams at another fortune, from a zero state
          train = make_streams(encode(train_entries, epoch * train_entries.size() / 7), B);
          state.clear();
        }
        return window_loss(m, train, b * T, T, state);
      },
      {.epochs = epochs,
       .clip_norm = 5.0,
       .validate = [&] { return evaluate(m, val, T); },
       .on_epoch_end =
           [&](const EpochRecord& e) {
             if (e.epoch == 8) opt.set_lr(1e-3);  // a smaller step for the last epochs
             val_bpc.push_back(e.val_loss / std::log(2.0));
             const std::string s = sample(m, chars, index, "%\n", args.quick ? 60 : 240, 0.8, sample_gen);
             std::cout << "epoch " << e.epoch << ": val " << ex::num(val_bpc.back(), "%.3f")
                       << " bits/char; sample at temperature 0.8:\n"
                       << s << "\n----\n";
             samples_file << "epoch " << e.epoch << " (temperature 0.8):\n" << s << "\n----\n";
           },
       .out = &std::cout});
  h.write_csv(args.path("history.csv"));

  std::cout << "\nsamples after training, primed with \"%\\n\" (a fortune's start):\n";
  for (double temp : {0.5, 0.8, 1.0}) {
    const std::string s = sample(m, chars, index, "%\n", args.quick ? 60 : 300, temp, sample_gen);
    std::cout << "-- temperature " << temp << " --\n" << s << "\n";
    samples_file << "final, temperature " << temp << ":\n" << s << "\n----\n";
  }

  ex::Series tr{"train", {}, {}, "linespoints"}, va{"validation", {}, {}, "linespoints"};
  for (std::size_t i = 0; i < h.epochs.size(); ++i) {
    tr.x.push_back(static_cast<double>(h.epochs[i].epoch));
    tr.y.push_back(h.epochs[i].loss / std::log(2.0));
    va.x.push_back(static_cast<double>(h.epochs[i].epoch));
    va.y.push_back(val_bpc[i]);
  }
  ex::plot(args.path("bpc.png"), "charrnn: LSTM(" + std::to_string(H) + ") on six fortune files", "epoch",
           "bits per character", {tr, va});

  const double bpc = val_bpc.empty() ? NAN : val_bpc.back();
  std::cout << "\ntoy: '" << toy_text << "' (" << (toy_ok ? "as in the tutorial" : "NOT the tutorial's") << ")\n"
            << "fortunes: validation " << ex::num(bpc, "%.3f") << " bits per character after " << epochs
            << " epochs; wall time " << ex::num(ex::seconds_since(start), "%.0f") << " s\n";
  ex::result({{"example", "charrnn"}, {"toy", "\"" + toy_text + "\""}, {"val_bpc", ex::num(bpc, "%.3f")}});
  return toy_ok ? 0 : 1;
}

int main(int argc, char** argv) { return ex::guard("charrnn", [&] { return run(argc, argv); }); }
