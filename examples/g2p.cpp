// examples/g2p.cpp — grapheme to phoneme: spelling in, pronunciation out, on the CMU Pronouncing
// Dictionary, with an encoder–decoder and attention (rwd::Seq2Seq, nn/seq2seq.hpp).
//
// The seeds' encoder–decoder: "the last hidden state becomes the input to a second RNN of a language
// model … the attention model gets around this bottleneck by computing a weighted combination of all
// the hidden states in the encoder for the decoder output at different time steps." Here the input is
// a word's letters and the output its phones, which are not aligned with the letters (through → th r
// uw: 7 letters, 3 phones; x → eh k s: 1 letter, 3 phones).
//
// The data (examples/common/cmudict.hpp): Debian's festlex-cmu, cmudict 0.4 as Festival ships it,
// 105,901 entries → 105,664 distinct lowercase words over 40 phones, stress dropped; a word with
// several pronunciations keeps them all as references. A seeded split by word, 90 / 5 / 5.
//
// The model. Letters → Embedding(chars => 48) → bidirectional LSTM (2 × 128) → memory of 256 rows per
// letter; its final states (both directions, concatenated) projected to start an LSTM decoder of 256
// units, which reads the previous phone's embedding (48) and the previous attention context (input
// feeding), attends over the memory (--attention additive | general | dot | none; additive by
// default), and predicts the next phone from tanh(W_c [h_t; c_t]). Dropout 0.2 on the embeddings and
// before the output layer; Adam(2e-3 for six epochs, then halved after each: 1e-3 … 1.25e-4 in epoch
// 10), gradients clipped to norm 5, batches of 64 words, 10 epochs, teacher forcing with the target
// mask in the loss. `--attention none` is the same model without attention:
// the encoder's final state is then the only way the spelling reaches the decoder (the bottleneck).
//
// Each epoch: the validation loss and the validation PER / WER with greedy decoding. At the end: test
// PER / WER with greedy decoding and with beam search (width 5, GNMT length normalisation α = 0.6),
// sample predictions, an attention heatmap of a few words (attention.png), the learning curves
// (loss.png, val_errors.png) and history.csv.
//
// Seed 0 (one thread): test WER 28.31% greedy, 28.39% beam (PER 6.95%, 7.01%) with additive attention,
// 33.31% / 32.99% without; 1,229 s CPU (20.5 min) with attention, 593 s without — a full run fits in
// well under the 45 minutes asked (docs/peers.md has the seeds and the PyTorch peer).
//
//   g2p [--quick] [--out DIR] [--seed N] [--attention additive|general|dot|none] [--epochs N]
//   RESULT example=g2p attention=… val_per=… val_wer=… test_per_greedy=… test_wer_greedy=…
//          test_per_beam=… test_wer_beam=… seconds=…
#include "common/cmudict.hpp"
#include "common/example.hpp"

#include <algorithm>
#include <iomanip>
#include <memory>
#include <numeric>
#include <optional>

using namespace rwd;

namespace {

constexpr std::size_t embed = 48, encoder_hidden = 128, decoder_hidden = 256, batch_size = 64, eval_batch = 256;
constexpr double dropout = 0.2, learning_rate = 2e-3, clip = 5.0;
constexpr std::size_t constant_epochs = 6;  // the learning rate is halved after each epoch past these

/// The learning rate of epoch `epoch` (1-based): 2e-3 for the first six epochs, then halved after each
/// one (1e-3, 5e-4, 2.5e-4, 1.25e-4 for epochs 7–10). The peer sets the same.
double learning_rate_of(std::size_t epoch) {
  return epoch <= constant_epochs ? learning_rate : learning_rate * std::ldexp(1.0, -static_cast<int>(epoch - constant_epochs));
}
constexpr std::size_t max_phones = 32;  // decoding stops here (the longest pronunciation has 20 phones)
const DecodeOptions greedy_options{.max_length = max_phones};
const DecodeOptions beam_options{.max_length = max_phones, .beam_width = 5, .alpha = 0.6};

/// The flags this example adds to ex::Args', checked.
struct G2PFlags {
  std::string attention = "additive";
  std::size_t epochs = 0;  // 0: the default for the mode
};

G2PFlags g2p_flags(const ex::Args& args) {
  G2PFlags f;
  if (auto a = args.flag("--attention")) f.attention = *a;
  if (auto e = args.flag("--epochs")) f.epochs = args.whole("--epochs", *e, 1, 1000);
  if (f.attention != "additive" && f.attention != "general" && f.attention != "dot" && f.attention != "none")
    args.fail("--attention takes additive, general, dot or none, not '" + f.attention + "'");
  return f;
}

std::optional<AttentionKind> attention_kind(const std::string& s) {
  if (s == "none") return std::nullopt;
  return s == "additive" ? AttentionKind::additive : s == "dot" ? AttentionKind::dot : AttentionKind::general;
}

/// Decodes `words` in batches (greedy or beam) and scores them against every reference.
cmu::ErrorRates score(Seq2Seq& model, const cmu::Dictionary& d, const std::vector<std::size_t>& words, bool beam,
                      std::vector<Hypothesis>* keep = nullptr) {
  const bool was_training = model.training();
  model.eval();
  cmu::ErrorRates rates;
  for (std::size_t first = 0; first < words.size(); first += eval_batch) {
    const cmu::Batch b = cmu::make_batch(d, words, first, std::min(eval_batch, words.size() - first));
    std::vector<Hypothesis> hyps = beam ? model.beam_search(b.source.ids, b.source.mask, beam_options)
                                        : model.greedy(b.source.ids, b.source.mask, greedy_options);
    for (std::size_t k = 0; k < hyps.size(); ++k) rates.add(hyps[k].tokens, d.words[b.words[k]].pronunciations);
    if (keep) keep->insert(keep->end(), std::make_move_iterator(hyps.begin()), std::make_move_iterator(hyps.end()));
  }
  model.train(was_training);
  return rates;
}

/// Mean teacher-forced loss per target phone over `words` (no dropout).
double mean_loss(Seq2Seq& model, const cmu::Dictionary& d, const std::vector<std::size_t>& words) {
  NoGradGuard no_grad;
  const bool was_training = model.training();
  model.eval();
  double total = 0, phones = 0;
  for (std::size_t first = 0; first < words.size(); first += eval_batch) {
    const cmu::Batch b = cmu::make_batch(d, words, first, std::min(eval_batch, words.size() - first));
    const Tensor logits = model(b.source.ids, b.source.mask, b.target.ids);
    const double n = sum(b.target.mask).item();
    total += Seq2Seq::loss(logits, b.target.ids, b.target.mask).item() * n;
    phones += n;
  }
  model.train(was_training);
  return total / phones;
}

/// The attention matrices of a few words as one PNG of heatmaps (rows: phones out, columns: letters in).
void plot_attention(const std::string& png, const cmu::Dictionary& d, const std::vector<std::size_t>& words,
                    const std::vector<Hypothesis>& hyps) {
  const std::string dat = png + ".dat", gp = png + ".gp";
  std::ostringstream data, script;
  const std::size_t n = words.size(), cols = 2, rows = (n + cols - 1) / cols;
  script << "set terminal pngcairo size " << 520 * cols << "," << 420 * rows << " noenhanced\nset output "
         << ex::gp_quote(png) << "\nset multiplot layout " << rows << "," << cols
         << " title 'g2p: attention of the decoder (rows: phones emitted, columns: letters read)'\n"
         << "set palette defined (0 'white', 1 '#2060b0')\nset cbrange [0:1]\nunset key\nset tics scale 0\n";
  for (std::size_t w = 0; w < n; ++w) {
    const cmu::Word& word = d.words[words[w]];
    const Hypothesis& h = hyps[w];
    const std::vector<double> a = h.attention.to_vector();
    const std::size_t out = h.attention.dim(0), in = h.attention.dim(1);
    for (std::size_t i = 0; i < out; ++i) {
      for (std::size_t j = 0; j < in; ++j) data << j << " " << i << " " << a[i * in + j] << "\n";
      data << "\n";
    }
    data << "\n";  // with the blank line above: gnuplot's index separator
    script << "set title " << ex::gp_quote(word.spelling + " -> " + d.phones.str(h.tokens)) << "\n"
           << "set xrange [-0.5:" << in - 0.5 << "]\nset yrange [" << out - 0.5 << ":-0.5]\nset xtics (";
    for (std::size_t j = 0; j < in; ++j) script << (j ? ", " : "") << ex::gp_quote(word.spelling.substr(j, 1)) << " " << j;
    script << ")\nset ytics (";
    for (std::size_t i = 0; i < out; ++i)
      script << (i ? ", " : "") << ex::gp_quote(i < h.tokens.size() ? d.phones.symbols[h.tokens[i]] : "<eos>") << " " << i;
    script << ")\nplot " << ex::gp_quote(dat) << " index " << w << " using 1:2:3 with image\n";
  }
  script << "unset multiplot\n";
  write_file_atomic(dat, data.str());
  write_file_atomic(gp, script.str());
  const std::string gnuplot = ex::gnuplot_path();
  if (gnuplot.empty() || std::system((gnuplot + " " + ex::gp_quote(gp) + " 2>/dev/null").c_str()) != 0)
    std::cerr << "plot: could not run gnuplot on " << gp << "\n";
}

}  // namespace

int run(int argc, char** argv) {
  ex::Args args(argc, argv, "g2p", {.flags = {{"--attention", "additive|general|dot|none"}, {"--epochs", "N"}}});
  const G2PFlags flags = g2p_flags(args);
  const auto start = std::chrono::steady_clock::now();
  if (!std::filesystem::exists(cmu::default_path)) {
    std::cerr << "g2p: " << cmu::default_path << " is missing: install Debian's festlex-cmu (apt-get install festlex-cmu)\n";
    return 1;
  }

  const cmu::Dictionary dict = cmu::load();
  cmu::Split split = cmu::split(dict, args.seed);
  std::cout << "data: " << cmu::default_path << ": " << dict.entries << " entries → " << dict.words.size()
            << " words (lowercase), " << dict.several << " with several pronunciations; " << dict.chars.size() - 3
            << " letters, " << dict.phones.size() - 3 << " phones (stress dropped)\n"
            << "  split by word 90/5/5: train " << split.train.size() << ", validation " << split.val.size() << ", test "
            << split.test.size() << "; e.g.";
  for (std::size_t i = 0; i < 4; ++i) {
    const cmu::Word& w = dict.words[split.train[i]];
    std::cout << " " << w.spelling << " (" << dict.phones.str(w.pronunciations.front()) << ")";
  }
  std::cout << "\n";

  const std::size_t epochs = flags.epochs ? flags.epochs : args.quick ? 1 : 10;
  std::size_t batches = split.train.size() / batch_size;
  if (args.quick) {  // seconds, for CI: a few batches, a few hundred words to score
    batches = 30;
    split.val.resize(200);
    split.test.resize(200);
  }

  Generator gen(args.seed + 1);
  auto encoder = std::make_shared<Recurrent>(LSTM(embed, encoder_hidden, {}, {.bidirectional = true}, gen));
  Seq2Seq model(dict.chars.size(), dict.phones.size(), encoder,
                {.embedding_size = embed,
                 .hidden_size = decoder_hidden,
                 .attention = attention_kind(flags.attention),
                 .dropout = dropout,
                 .bos = cmu::Vocab::bos,
                 .eos = cmu::Vocab::eos},
                gen);
  Adam opt(model.parameters(), {.lr = learning_rate});
  std::cout << "\nmodel (attention: " << flags.attention << "): " << model.repr() << ", " << model.num_parameters()
            << " parameters\n" << opt.str() << " (halved after each epoch from epoch " << constant_epochs
            << "), clip norm " << clip << ", " << epochs << " epochs of " << batches << " batches of " << batch_size << "\n";

  std::vector<std::size_t> order = split.train;
  std::vector<double> val_per, val_wer;
  const History history = fit(
      opt, batches,
      [&](std::size_t, std::size_t b) {
        if (b == 0)  // a fresh seeded shuffle each epoch
          for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[gen.integer(i)]);
        const cmu::Batch batch = cmu::make_batch(dict, order, b * batch_size, batch_size);
        return Seq2Seq::loss(model(batch.source.ids, batch.source.mask, batch.target.ids), batch.target.ids,
                             batch.target.mask);
      },
      {.epochs = epochs,
       .metrics = {{"val_per", [&] { return val_per.back(); }}, {"val_wer", [&] { return val_wer.back(); }}},
       .clip_norm = clip,
       .validate =
           [&] {
             const cmu::ErrorRates r = score(model, dict, split.val, false);
             val_per.push_back(r.per());
             val_wer.push_back(r.wer());
             return mean_loss(model, dict, split.val);
           },
       .on_epoch_end =
           [&](const EpochRecord& e) {
             opt.set_lr(learning_rate_of(e.epoch + 1));
             std::cout << "  epoch " << e.epoch << ": loss " << ex::num(e.loss, "%.4f") << ", validation loss "
                       << ex::num(e.val_loss, "%.4f") << ", PER " << ex::num(100 * val_per.back(), "%.2f") << "%, WER "
                       << ex::num(100 * val_wer.back(), "%.2f") << "% (greedy; " << ex::num(e.seconds, "%.0f")
                       << " s training, " << ex::num(ex::seconds_since(start), "%.0f") << " s so far)" << std::endl;
           },
       .out = args.quick ? nullptr : &std::cout});
  history.write_csv(args.path("history.csv"));
  ex::plot_history(args.path("loss.png"), "g2p (" + flags.attention + " attention): cross-entropy per phone", history);
  {
    ex::Series per{"validation PER (%)", {}, {}, "linespoints"}, wer{"validation WER (%)", {}, {}, "linespoints"};
    for (std::size_t i = 0; i < val_per.size(); ++i) {
      per.x.push_back(static_cast<double>(i + 1)), per.y.push_back(100 * val_per[i]);
      wer.x.push_back(static_cast<double>(i + 1)), wer.y.push_back(100 * val_wer[i]);
    }
    ex::plot(args.path("val_errors.png"), "g2p (" + flags.attention + " attention): validation errors, greedy", "epoch",
             "error rate (%)", {per, wer});
  }

  // ---- test: greedy and beam ----
  std::vector<Hypothesis> greedy_out, beam_out;
  auto t0 = std::chrono::steady_clock::now();
  const cmu::ErrorRates greedy = score(model, dict, split.test, false, &greedy_out);
  const double greedy_s = ex::seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  const cmu::ErrorRates beam = score(model, dict, split.test, true, &beam_out);
  const double beam_s = ex::seconds_since(t0);
  std::cout << "\ntest, " << greedy.words << " words (" << greedy.reference_phones << " reference phones):\n"
            << "  decoding            |   PER   |   WER   | time\n"
            << "  greedy              | " << std::setw(6) << ex::num(100 * greedy.per(), "%.2f") << "% | " << std::setw(6)
            << ex::num(100 * greedy.wer(), "%.2f") << "% | " << ex::num(greedy_s, "%.0f") << " s\n"
            << "  beam 5, alpha 0.6   | " << std::setw(6) << ex::num(100 * beam.per(), "%.2f") << "% | " << std::setw(6)
            << ex::num(100 * beam.wer(), "%.2f") << "% | " << ex::num(beam_s, "%.0f") << " s\n"
            << "  (published, CMUdict 0.7b's own split: encoder-decoder LSTM without attention 7.6% / 28.6%\n"
            << "   (Yao & Zweig 2015); with attention 5.0% / 21.7% (Toshniwal & Livescu 2016))\n";

  std::cout << "\nsamples from the test set (reference | greedy | beam; * = wrong):\n";
  for (std::size_t i = 0; i < std::min<std::size_t>(12, split.test.size()); ++i) {
    const cmu::Word& w = dict.words[split.test[i]];
    auto mark = [&](const Indices& p) {
      return std::find(w.pronunciations.begin(), w.pronunciations.end(), p) == w.pronunciations.end() ? "*" : " ";
    };
    std::string refs;
    for (const Indices& r : w.pronunciations) refs += (refs.empty() ? "" : " / ") + dict.phones.str(r);
    std::cout << "  " << std::setw(14) << std::left << w.spelling << std::right << " " << refs << " | "
              << dict.phones.str(greedy_out[i].tokens) << mark(greedy_out[i].tokens) << " | "
              << dict.phones.str(beam_out[i].tokens) << mark(beam_out[i].tokens) << "\n";
  }

  // The attention of a few test words (greedy), as heatmaps: a good alignment runs down the diagonal,
  // with two letters on one phone (th, ph, double letters) and one letter on two phones (x → k s).
  if (model.has_attention()) {
    std::vector<std::size_t> picked;
    std::vector<Hypothesis> picked_hyps;
    for (std::size_t i = 0; i < split.test.size() && picked.size() < 4; ++i)
      if (dict.words[split.test[i]].spelling.size() >= 6) {
        picked.push_back(split.test[i]);
        picked_hyps.push_back(greedy_out[i]);
      }
    plot_attention(args.path("attention.png"), dict, picked, picked_hyps);
    std::cout << "\nattention heatmaps of " << picked.size() << " test words: " << args.path("attention.png") << "\n";
  }

  const double seconds = ex::seconds_since(start);
  std::cout << "wall time " << ex::num(seconds, "%.0f") << " s\n";
  ex::result({{"example", "g2p"},
              {"attention", flags.attention},
              {"val_per", ex::num(val_per.back(), "%.4f")},
              {"val_wer", ex::num(val_wer.back(), "%.4f")},
              {"test_per_greedy", ex::num(greedy.per(), "%.4f")},
              {"test_wer_greedy", ex::num(greedy.wer(), "%.4f")},
              {"test_per_beam", ex::num(beam.per(), "%.4f")},
              {"test_wer_beam", ex::num(beam.wer(), "%.4f")},
              {"seconds", ex::num(seconds, "%.0f")}});
  return 0;
}

int main(int argc, char** argv) { return ex::guard("g2p", [&] { return run(argc, argv); }); }
