// examples/words.cpp — which language is this word? Sequence classification with variable lengths.
//
// The seeds' IMDB model (Embedding → SimpleRNN → Dense(sigmoid), binary cross-entropy, RMSprop) on a
// task whose data Debian ships: a word from one of five word lists — American English (wamerican),
// German (wngerman), French (wfrench), Italian (witalian), Spanish (wspanish) — is read letter by
// letter, and the model names its language.
//
// The data. A word is kept when it is written in lowercase letters only (so proper names, German
// nouns, abbreviations, possessives and hyphenated forms are dropped). Accents are then folded to the
// plain letter (é → e, ñ → n, ü → u, ç → c; ß → ss, æ → ae, œ → oe): otherwise a single ñ or ß would
// give the answer away, and the model has to learn the languages' spelling instead. Words of 3 to 20
// letters are kept. A folded word found in more than one list is removed from all of them (it has
// no single right answer). Each language then contributes the same number of words (a seeded draw),
// split 80 / 10 / 10 into train, validation and test.
//
// The model. Letters (a–z as 1–26, 0 is padding) → Embedding(27 => 32) → recurrent layer (64) →
// Dense(64 => 5) → softmax cross-entropy over the five languages (with five classes the seed's
// sigmoid output becomes a softmax), RMSprop with Keras' defaults as in the seed, batches of 128.
// A batch is padded to its longest word, and mask_from_lengths makes the recurrent layer skip the
// padding, so its output is each word's state after that word's own last letter — checked below
// against the word run alone. The same budget trains a SimpleRNN, an LSTM and a GRU; then the seed's
// own two-class form (English or not, on all English words and as many others; Dense(64 => 1, sigmoid),
// binary cross-entropy) with the SimpleRNN.
//
// Models named on the command line are trained instead of those (and the binary form is skipped):
// rnn, lstm, gru, and issue 16's two regularised LSTMs — ln_lstm, a LayerNorm-LSTM (Ba et al. 2016),
// and lstm_vd, an LSTM with variational dropout 0.2 on its inputs and on its recurrent state (one mask
// per sequence, Gal & Ghahramani 2016; training only). `words lstm ln_lstm lstm_vd` compares the three.
//
//   words [--quick] [--out DIR] [--seed N] [rnn|lstm|gru|ln_lstm|lstm_vd ...]
//   RESULT example=words rnn_acc=… lstm_acc=… gru_acc=… binary_acc=…   (or a KIND_acc per model named)
#include "common/example.hpp"

#include <algorithm>
#include <array>
#include <fstream>
#include <iomanip>
#include <map>
#include <memory>
#include <numeric>
#include <set>

using namespace rwd;

namespace {

struct Language {
  const char* name;
  const char* file;
  const char* package;
};
const std::array<Language, 5> languages = {{{"English", "/usr/share/dict/american-english", "wamerican"},
                                            {"German", "/usr/share/dict/ngerman", "wngerman"},
                                            {"French", "/usr/share/dict/french", "wfrench"},
                                            {"Italian", "/usr/share/dict/italian", "witalian"},
                                            {"Spanish", "/usr/share/dict/spanish", "wspanish"}}};
constexpr std::size_t n_classes = languages.size();
constexpr std::size_t min_letters = 3, max_letters = 20;

/// A lowercase letter with its accent folded ("" if c is not a lowercase letter we know).
std::string fold(char32_t c) {
  if (c >= U'a' && c <= U'z') return std::string(1, static_cast<char>(c));
  switch (c) {
    case U'à': case U'á': case U'â': case U'ã': case U'ä': case U'å': return "a";
    case U'æ': return "ae";
    case U'ç': return "c";
    case U'è': case U'é': case U'ê': case U'ë': return "e";
    case U'ì': case U'í': case U'î': case U'ï': return "i";
    case U'ñ': return "n";
    case U'ò': case U'ó': case U'ô': case U'õ': case U'ö': case U'ø': return "o";
    case U'œ': return "oe";
    case U'ù': case U'ú': case U'û': case U'ü': return "u";
    case U'ý': case U'ÿ': return "y";
    case U'ß': return "ss";
    default: return "";
  }
}

/// The word folded to a–z, or "" when it is not written in lowercase letters only (UTF-8 input).
std::string normalize(const std::string& w) {
  std::string out;
  for (std::size_t i = 0; i < w.size();) {
    const auto b = static_cast<unsigned char>(w[i]);
    char32_t c;
    std::size_t n;
    if (b < 0x80) c = b, n = 1;
    else if ((b & 0xE0) == 0xC0) c = b & 0x1F, n = 2;
    else if ((b & 0xF0) == 0xE0) c = b & 0x0F, n = 3;
    else c = b & 0x07, n = 4;
    if (i + n > w.size()) return "";
    for (std::size_t k = 1; k < n; ++k) c = (c << 6) | (static_cast<unsigned char>(w[i + k]) & 0x3F);
    const std::string f = fold(c);
    if (f.empty()) return "";
    out += f;
    i += n;
  }
  return out;
}

struct Example {
  std::string word;
  std::size_t label;
};

struct Split {
  std::vector<Example> train, val, test;
};

/// The five lists read, filtered, deduplicated across languages, balanced and split.
Split load(std::uint32_t seed, std::size_t per_class_cap) {
  std::map<std::string, unsigned> seen;  // folded word → bit set of its languages
  std::array<std::size_t, n_classes> raw{};
  for (std::size_t l = 0; l < n_classes; ++l) {
    std::ifstream in(languages[l].file);
    std::string line;
    while (std::getline(in, line)) {
      ++raw[l];
      const std::string w = normalize(line);
      if (w.size() >= min_letters && w.size() <= max_letters) seen[w] |= 1u << l;
    }
  }
  std::array<std::vector<std::string>, n_classes> words;  // in sorted order (the map's), for determinism
  std::size_t shared = 0;
  for (const auto& [w, bits] : seen) {
    if (bits & (bits - 1)) {
      ++shared;
      continue;
    }
    for (std::size_t l = 0; l < n_classes; ++l)
      if (bits == 1u << l) words[l].push_back(w);
  }
  std::size_t per_class = per_class_cap;
  for (std::size_t l = 0; l < n_classes; ++l) per_class = std::min(per_class, words[l].size());
  std::cout << "data: lowercase words of " << min_letters << "-" << max_letters
            << " letters, accents folded; " << shared << " words in more than one list removed\n";
  for (std::size_t l = 0; l < n_classes; ++l)
    std::cout << "  " << std::setw(8) << std::left << languages[l].name << std::right << std::setw(7) << raw[l]
              << " lines → " << std::setw(6) << words[l].size() << " usable words (" << languages[l].file << ")\n";
  std::cout << "  balanced: " << per_class << " words per language, split 80/10/10\n";

  Generator gen(seed);
  Split s;
  for (std::size_t l = 0; l < n_classes; ++l) {
    auto& v = words[l];
    for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[gen.integer(i)]);
    const std::size_t n_train = per_class * 8 / 10, n_val = per_class / 10;
    for (std::size_t i = 0; i < per_class; ++i)
      (i < n_train ? s.train : i < n_train + n_val ? s.val : s.test).push_back({v[i], l});
  }
  for (auto* part : {&s.train, &s.val, &s.test})
    for (std::size_t i = part->size(); i > 1; --i) std::swap((*part)[i - 1], (*part)[gen.integer(i)]);
  return s;
}

/// The seed's two-class task from the same split: every English word (label 0) and as many words of
/// the other four languages (label 1, drawn in the split's shuffled order), so chance is one half.
Split english_or_not(const Split& s) {
  Split b;
  for (auto [from, to] : {std::pair{&s.train, &b.train}, std::pair{&s.val, &b.val}, std::pair{&s.test, &b.test}}) {
    std::size_t english = 0, others = 0;
    for (const Example& e : *from) english += e.label == 0;
    for (const Example& e : *from)
      if (e.label == 0) to->push_back({e.word, 0});
      else if (others < english) ++others, to->push_back({e.word, 1});
  }
  return b;
}

/// A padded batch: ids (time, batch) with 0 after each word's end, the (time, batch) mask, the labels.
struct Batch {
  Tensor ids, mask;
  Indices labels;
};

Batch make_batch(const std::vector<Example>& data, const std::vector<std::size_t>& order, std::size_t first,
                 std::size_t count) {
  std::vector<std::size_t> lengths;
  Batch b;
  for (std::size_t k = 0; k < count; ++k) {
    const Example& e = data[order[first + k]];
    lengths.push_back(e.word.size());
    b.labels.push_back(static_cast<std::int64_t>(e.label));
  }
  const std::size_t T = *std::max_element(lengths.begin(), lengths.end());
  std::vector<double> ids(T * count, 0.0);
  for (std::size_t k = 0; k < count; ++k) {
    const std::string& w = data[order[first + k]].word;
    for (std::size_t t = 0; t < w.size(); ++t) ids[t * count + k] = w[t] - 'a' + 1;
  }
  b.ids = Tensor::from_vector(ids, {T, count});
  b.mask = mask_from_lengths(lengths, T);
  return b;
}

/// Embedding → recurrent layer (last real output) → Dense.
struct Classifier {
  std::string name;
  Embedding embed;
  Recurrent rnn;
  Dense head;

  Tensor operator()(const Batch& b) { return head(rnn(embed(b.ids), b.mask)); }
  std::vector<Tensor> parameters() const {
    std::vector<Tensor> p;
    for (const Module* m : {static_cast<const Module*>(&embed), static_cast<const Module*>(&rnn),
                            static_cast<const Module*>(&head)})
      for (const Tensor& t : m->parameters()) p.push_back(t);
    return p;
  }
  std::size_t num_parameters() const { return embed.num_parameters() + rnn.num_parameters() + head.num_parameters(); }
};

constexpr std::size_t embed_dim = 32, hidden = 64, batch_size = 128;

// The models words can train, by the name the command line gives them, with their name in the table.
const std::map<std::string, std::string> model_names{{"rnn", "SimpleRNN (tanh)"},
                                                     {"lstm", "LSTM"},
                                                     {"gru", "GRU"},
                                                     {"ln_lstm", "LayerNorm-LSTM"},
                                                     {"lstm_vd", "LSTM, var. dropout"}};

std::unique_ptr<Classifier> make_classifier(const std::string& kind, std::size_t outputs, Generator& gen) {
  const RecurrentOptions last_only{.return_sequences = false};
  const RecurrentOptions variational{.return_sequences = false, .input_dropout = 0.2, .recurrent_dropout = 0.2};
  Activation out_act = outputs == 1 ? Activation("sigmoid") : Activation();
  auto rnn = kind == "lstm"      ? LSTM(embed_dim, hidden, LSTMOptions{}, last_only, gen)
             : kind == "gru"     ? GRU(embed_dim, hidden, GRUOptions{}, last_only, gen)
             : kind == "ln_lstm" ? LayerNormLSTM(embed_dim, hidden, LayerNormLSTMOptions{}, last_only, gen)
             : kind == "lstm_vd" ? LSTM(embed_dim, hidden, LSTMOptions{}, variational, gen)
                                 : RNN(embed_dim, hidden, "tanh", CellOptions{}, last_only, gen);
  return std::unique_ptr<Classifier>(new Classifier{kind, Embedding(27, embed_dim, Dtype::f32, gen), std::move(rnn),
                                                    Dense(hidden, outputs, out_act, true, Dtype::f32, gen)});
}

/// Predicted class per word (argmax of the logits, or p > 0.5 for one sigmoid output).
std::vector<std::size_t> predict(Classifier& m, const std::vector<Example>& data, double* mean_loss, bool binary) {
  NoGradGuard no_grad;
  const bool was_training = m.rnn.training();
  m.rnn.eval();  // no dropout masks (lstm_vd) when predicting
  std::vector<std::size_t> order(data.size()), pred;
  std::iota(order.begin(), order.end(), 0);
  double loss = 0;
  for (std::size_t first = 0; first < data.size(); first += batch_size) {
    const Batch b = make_batch(data, order, first, std::min(batch_size, data.size() - first));
    const Tensor out = m(b);
    const std::vector<double> v = out.to_vector();
    const std::size_t n = b.labels.size(), C = out.dim(0);
    if (binary) {
      std::vector<double> y;
      for (auto l : b.labels) y.push_back(l == 0 ? 1.0 : 0.0);
      loss += binary_cross_entropy(out, Tensor::from_vector(y, {1, n})).item() * static_cast<double>(n);
      for (std::size_t j = 0; j < n; ++j) pred.push_back(v[j] > 0.5 ? 0 : 1);
    } else {
      loss += cross_entropy(out, b.labels).item() * static_cast<double>(n);
      for (std::size_t j = 0; j < n; ++j) {
        std::size_t best = 0;
        for (std::size_t c = 1; c < C; ++c)
          if (v[c * n + j] > v[best * n + j]) best = c;
        pred.push_back(best);
      }
    }
  }
  m.rnn.train(was_training);
  if (mean_loss) *mean_loss = loss / static_cast<double>(data.size());
  return pred;
}

double accuracy(const std::vector<std::size_t>& pred, const std::vector<Example>& data, bool binary) {
  std::size_t ok = 0;
  for (std::size_t i = 0; i < data.size(); ++i) ok += pred[i] == (binary ? (data[i].label == 0 ? 0u : 1u) : data[i].label);
  return static_cast<double>(ok) / static_cast<double>(data.size());
}

struct Trained {
  std::unique_ptr<Classifier> model;
  History history;
  std::vector<double> val_acc;
  double test_acc = 0;
  std::vector<std::size_t> test_pred;
  double seconds = 0;
};

/// Trains one model for `epochs` with RMSprop (Keras' defaults) and evaluates it on the test set.
Trained train(const std::string& kind, bool binary, const Split& data, std::size_t epochs, std::size_t max_batches,
              const ex::Args& args, std::uint32_t seed) {
  Generator gen(seed);
  Trained r;
  r.model = make_classifier(kind, binary ? 1 : n_classes, gen);
  Classifier& m = *r.model;
  std::cout << "\n== " << (binary ? "English or not: " : "") << m.embed.repr() << " → " << m.rnn.repr() << " → "
            << m.head.repr() << " (" << m.num_parameters() << " parameters), RMSprop (Keras defaults), "
            << epochs << " epochs ==\n";
  RMSprop opt(m.parameters(), RMSprop::keras_defaults());
  std::vector<std::size_t> order(data.train.size());
  std::iota(order.begin(), order.end(), 0);
  const std::size_t batches = std::min(max_batches, data.train.size() / batch_size);
  const auto start = std::chrono::steady_clock::now();
  r.history = fit(
      opt, batches,
      [&](std::size_t, std::size_t b) {
        if (b == 0)  // a fresh seeded shuffle each epoch
          for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[gen.integer(i)]);
        const Batch batch = make_batch(data.train, order, b * batch_size, batch_size);
        const Tensor out = m(batch);
        if (!binary) return cross_entropy(out, batch.labels);
        std::vector<double> y;
        for (auto l : batch.labels) y.push_back(l == 0 ? 1.0 : 0.0);
        return binary_cross_entropy(out, Tensor::from_vector(y, {1, batch_size}));
      },
      {.epochs = epochs,
       .validate =
           [&] {
             double loss = 0;
             r.val_acc.push_back(accuracy(predict(m, data.val, &loss, binary), data.val, binary));
             return loss;
           },
       .on_epoch_end = [&](const EpochRecord& e) {
         std::cout << "  epoch " << e.epoch << ": validation accuracy " << ex::num(r.val_acc.back(), "%.4f") << "\n";
       },
       .out = &std::cout});
  r.seconds = ex::seconds_since(start);
  r.history.write_csv(args.path((binary ? "binary_" : "") + kind + "_history.csv"));
  r.test_pred = predict(m, data.test, nullptr, binary);
  r.test_acc = accuracy(r.test_pred, data.test, binary);
  std::cout << "  test accuracy " << ex::num(r.test_acc, "%.4f") << " (" << ex::num(r.seconds, "%.0f") << " s)\n";
  return r;
}

/// The confusion matrix (rows: true language, columns: predicted) as text, and as a PNG heat map.
std::vector<std::vector<std::size_t>> confusion(const std::vector<std::size_t>& pred, const std::vector<Example>& data) {
  std::vector<std::vector<std::size_t>> c(n_classes, std::vector<std::size_t>(n_classes, 0));
  for (std::size_t i = 0; i < data.size(); ++i) ++c[data[i].label][pred[i]];
  return c;
}

void print_confusion(const std::string& title, const std::vector<std::vector<std::size_t>>& c) {
  std::cout << "\n" << title << " (rows: true language, columns: predicted)\n" << std::setw(10) << "";
  for (const auto& l : languages) std::cout << std::setw(9) << std::string(l.name).substr(0, 7);
  std::cout << "   recall\n";
  for (std::size_t i = 0; i < n_classes; ++i) {
    std::cout << std::setw(10) << std::left << languages[i].name << std::right;
    std::size_t row = 0;
    for (std::size_t j = 0; j < n_classes; ++j) {
      std::cout << std::setw(9) << c[i][j];
      row += c[i][j];
    }
    std::cout << std::setw(9) << ex::num(static_cast<double>(c[i][i]) / static_cast<double>(row), "%.3f") << "\n";
  }
}

void plot_confusion(const std::string& png, const std::string& title, const std::vector<std::vector<std::size_t>>& c) {
  const std::string dat = png + ".dat", gp = png + ".gp";
  std::ostringstream data, script;
  for (std::size_t i = 0; i < n_classes; ++i) {
    std::size_t row = 0;
    for (std::size_t j = 0; j < n_classes; ++j) row += c[i][j];
    for (std::size_t j = 0; j < n_classes; ++j)
      data << j << " " << i << " " << static_cast<double>(c[i][j]) / static_cast<double>(row) << " " << c[i][j] << "\n";
    data << "\n";
  }
  write_file_atomic(dat, data.str());
  script << "set terminal pngcairo size 700,600 noenhanced\nset output '" << png << "'\nset title '" << title
         << "'\nset xlabel 'predicted'\nset ylabel 'true'\nset cbrange [0:1]\nset cblabel 'fraction of the row'\n"
         << "set palette defined (0 'white', 1 '#2060b0')\nset xrange [-0.5:4.5]\nset yrange [4.5:-0.5]\n"
         << "set xtics (";
  for (std::size_t i = 0; i < n_classes; ++i) script << (i ? ", " : "") << "'" << languages[i].name << "' " << i;
  script << ")\nset ytics (";
  for (std::size_t i = 0; i < n_classes; ++i) script << (i ? ", " : "") << "'" << languages[i].name << "' " << i;
  script << ")\nplot '" << dat << "' using 1:2:3 with image notitle, '" << dat
         << "' using 1:2:(sprintf('%d', $4)) with labels notitle\n";
  write_file_atomic(gp, script.str());
  const std::string gnuplot = ex::gnuplot_path();
  if (gnuplot.empty() || std::system((gnuplot + " '" + gp + "'").c_str()) != 0)
    std::cerr << "plot: could not run gnuplot on " << gp << "\n";
}

}  // namespace

int run(int argc, char** argv) {
  ex::Args args(argc, argv, "words", {.positional = "[rnn|lstm|gru|ln_lstm|lstm_vd ...]"});
  const auto start = std::chrono::steady_clock::now();
  const bool default_models = args.rest.empty();
  std::vector<std::string> kinds = default_models ? std::vector<std::string>{"rnn", "lstm", "gru"} : args.rest;
  for (const std::string& k : kinds) {
    if (!model_names.count(k)) {
      std::cerr << "words: no model '" << k << "' (rnn, lstm, gru, ln_lstm, lstm_vd)\n";
      return 2;
    }
    // Each model is trained once and is one line of the table: a name given twice would train it twice.
    if (std::count(kinds.begin(), kinds.end(), k) > 1) {
      std::cerr << "words: model '" << k << "' is named twice\n";
      return 2;
    }
  }
  for (const auto& l : languages)
    if (!std::filesystem::exists(l.file)) {
      std::cerr << "words: " << l.file << " is missing: install Debian's " << l.package << " package (apt-get install "
                << l.package << ")\n";
      return 1;
    }

  const std::size_t per_class = args.quick ? 600 : 10000;
  const std::size_t epochs = args.quick ? 1 : 8, max_batches = args.quick ? 4 : SIZE_MAX;
  const Split data = load(args.seed, per_class);
  std::cout << "  train " << data.train.size() << ", validation " << data.val.size() << ", test " << data.test.size()
            << " words; e.g.";
  for (std::size_t i = 0; i < 6; ++i) std::cout << " " << data.train[i].word << " (" << languages[data.train[i].label].name << ")";
  std::cout << "\n";

  // The mask at work: in a padded batch, each word's output must be what the word gives alone.
  {
    Generator gen(args.seed);
    auto m = make_classifier("rnn", n_classes, gen);
    NoGradGuard no_grad;
    std::vector<std::size_t> order(8);
    std::iota(order.begin(), order.end(), 0);
    const Batch padded = make_batch(data.train, order, 0, 8);
    const std::vector<double> together = (*m)(padded).to_vector();
    double worst = 0;
    for (std::size_t k = 0; k < 8; ++k) {
      const std::vector<double> alone = (*m)(make_batch(data.train, order, k, 1)).to_vector();
      for (std::size_t c = 0; c < n_classes; ++c) worst = std::max(worst, std::abs(alone[c] - together[c * 8 + k]));
    }
    std::cout << "mask check: 8 words padded to " << padded.ids.dim(0) << " steps vs each word alone: largest difference "
              << worst << "\n";
    if (worst > 1e-5) {
      std::cerr << "words: the masked batch does not give each word's own last output\n";
      return 1;
    }
  }

  std::map<std::string, Trained> runs;
  for (const std::string& kind : kinds) runs[kind] = train(kind, false, data, epochs, max_batches, args, args.seed + 1);
  Trained binary;
  if (default_models) {
    const Split two = english_or_not(data);
    std::cout << "\nEnglish or not (the seed's binary form): " << two.train.size() << " / " << two.val.size() << " / "
              << two.test.size() << " words, half of them English";
    binary = train("rnn", true, two, epochs, max_batches, args, args.seed + 1);
  }

  // Learning curves and validation accuracy of the models.
  std::vector<ex::Series> loss_series, acc_series;
  for (const std::string& kind : kinds) {
    ex::Series tr{kind + " train", {}, {}, "linespoints"}, va{kind + " validation", {}, {}, "linespoints"},
        acc{kind, {}, {}, "linespoints"};
    const Trained& r = runs[kind];
    for (std::size_t i = 0; i < r.history.epochs.size(); ++i) {
      const double e = static_cast<double>(r.history.epochs[i].epoch);
      tr.x.push_back(e), tr.y.push_back(r.history.epochs[i].loss);
      va.x.push_back(e), va.y.push_back(r.history.epochs[i].val_loss);
      acc.x.push_back(e), acc.y.push_back(r.val_acc[i]);
    }
    loss_series.insert(loss_series.end(), {tr, va});
    acc_series.push_back(acc);
  }
  ex::plot(args.path("loss.png"), "words: cross-entropy per epoch", "epoch", "cross-entropy (nats)", loss_series);
  ex::plot(args.path("val_accuracy.png"), "words: validation accuracy per epoch", "epoch", "accuracy", acc_series);
  if (default_models)
    ex::plot_history(args.path("binary_loss.png"), "words, English or not: SimpleRNN, binary cross-entropy",
                     binary.history, false);

  for (const std::string& kind : kinds) {
    const auto c = confusion(runs[kind].test_pred, data.test);
    print_confusion("test confusion matrix, " + runs[kind].model->rnn.repr(), c);
    plot_confusion(args.path("confusion_" + kind + ".png"), "words: test confusion, " + runs[kind].model->rnn.repr(), c);
  }

  std::cout << "\n| task, model (hidden " << hidden << ")         | parameters | test accuracy | train time |\n"
            << "| ------------------------------- | ---------- | ------------- | ---------- |\n";
  auto row = [](const std::string& what, const Trained& r) {
    std::cout << "| " << std::setw(31) << std::left << what << std::right << " | " << std::setw(10)
              << r.model->num_parameters() << " | " << std::setw(13) << ex::num(r.test_acc, "%.4f") << " | "
              << std::setw(8) << ex::num(r.seconds, "%.0f") << " s |\n";
  };
  for (const std::string& kind : kinds) row("5 languages, " + model_names.at(kind), runs[kind]);
  if (default_models) row("English or not, SimpleRNN", binary);
  std::cout << "(chance: 0.2 for 5 languages, 0.5 for English or not)\n"
            << "wall time " << ex::num(ex::seconds_since(start), "%.0f") << " s\n";

  std::vector<std::pair<std::string, std::string>> result{{"example", "words"}};
  for (const std::string& kind : kinds) result.emplace_back(kind + "_acc", ex::num(runs[kind].test_acc, "%.4f"));
  if (default_models) result.emplace_back("binary_acc", ex::num(binary.test_acc, "%.4f"));
  ex::result(result);
  return 0;
}

int main(int argc, char** argv) { return ex::guard("words", [&] { return run(argc, argv); }); }
