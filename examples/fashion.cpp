// examples/fashion.cpp — sequential Fashion-MNIST: an LSTM reads each 28×28 image row by row, as 28
// steps of 28 features, and a Dense layer classifies its last output into the 10 kinds of clothing.
//
//   x_t = row t of the image (28 pixels / 255)           t = 0 … 27, a (28, batch) step
//   (h_t, c_t) = LSTMCell(28 => 128)(x_t, h_{t−1}, c_{t−1})
//   logits = Dense(128 => 10)(h_27)                       (10, batch), class axis 0
//   loss = cross_entropy(logits, labels),  Adam(lr = 1e-3)
//
// The data is Debian's `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist, the four gzipped
// IDX files as Zalando publishes them). 5,000 of the 60,000 training images, drawn with the seed, are
// held out for validation; the test accuracy is measured on all 10,000 test images.
//
// The IDX files are gzipped. They are unpacked by piping them through `gzip -dc` rather than linking
// zlib: gzip is an Essential package, present on every Debian system, so the example needs no build
// dependency beyond rewind itself (every example links only rewind::rewind), and unpacking the 30 MB
// takes a fraction of a second next to the training. Raw (already unpacked) IDX files are read too.
//
//   bash scripts/example.sh fashion                 # installs the package, builds, runs the full run
//   ./build/examples/fashion                        # the full run: 8 epochs of 55,000 images, batch 64
//   ./build/examples/fashion --quick                # 2 × 10 batches, a subset of the test set: seconds
//   ./build/examples/fashion epochs=2 train=20000   # another budget (also batch=N, data=DIR, dtype=f64)
//   mpirun -np 2 ./build/examples/fashion           # data-parallel over 2 processes (MPI builds)
//
// Under mpirun (train/distributed.hpp) every rank draws the same shuffles from the seed, takes its part
// of each global batch of `batch` images (64 = 32 + 32), and DataParallel averages the gradients, so
// the run is the one-process run with the same global batch and seed, up to float32 rounding in the
// order of the sums. Rank 0 alone prints, tests and writes the files (every rank validates on the
// whole validation set). Measured on this 2-core machine while other builds ran (load ~7;
// OPENBLAS_NUM_THREADS=1, all 10,000 test images):
//   epochs=1 train=1280 (20 steps)   1 rank: test accuracy 0.3709, val_loss 1.89157834   2 ranks: the same
//   epochs=1 train=12800 (200 steps) 1 rank: 0.7241                                     2 ranks: 0.7250
//   epochs=2 (1718 steps)            1 rank: 0.8329, 3,570 images/s                     2 ranks: 0.8360, 2,062 images/s
// (float32 rounding differences grow over the steps as any reordering would; the two processes share
// two busy cores and an all-reduce of 0.3 MB per step, so here 2 ranks are slower than 1.)
// In float64 (dtype=f64; quiet machine): 20, 100 and 200 steps give the same test accuracy at 1 and 2
// ranks (0.3709, 0.6619, 0.7343), the validation loss after 200 steps 0.70819217 against 0.708192267
// — the 1e-16 of a reordered sum grown to 1e-7 — and after 2 epochs (1718 steps) 0.8350 against
// 0.8406: training amplifies any difference in the order of additions, as it does between any two
// data-parallel runs (PyTorch's DDP too); 2 ranks ran 2,366 images/s.
//
// The full run reached test accuracy 0.8722 (seed 0) in 9.5 minutes on a 2-core machine shared with
// other builds (the process got 42% of a core; 244 s of CPU). The PyTorch peer, with the same model
// and budget, is examples/peers/fashion_torch.py. The matrices are small (512 × 128 · 128 × 64), so
// OpenBLAS gains nothing from threads here; on a busy machine OPENBLAS_NUM_THREADS=1 is about twice as
// fast as 2 threads.
//
// Writes to out/fashion/: history.csv (fit's per-epoch record), batches.csv (every batch's loss),
// accuracy.csv (validation accuracy per epoch), confusion.csv (test set), learning_curve.png (every
// batch's loss and the validation loss), history.png (fit's per-epoch losses), accuracy.png.
#include "common/example.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <iomanip>
#include <map>

using namespace rwd;

namespace {

constexpr std::size_t rows = 28, cols = 28, classes = 10, hidden = 128;
const std::array<const char*, classes> class_names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                      "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
const char* const package = "dataset-fashion-mnist";
const char* const default_dir = "/usr/share/datasets/fashion-mnist";

// ---- reading the IDX files ----

/// Thrown when the data cannot be read; main() prints it with the package's name.
struct DataError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// The bytes `gzip -dc path` writes (gzip run directly, no shell).
std::vector<std::uint8_t> gunzip(const std::string& path) {
  int fd[2];
  if (pipe(fd) != 0) throw DataError("pipe failed");
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fd[1], STDOUT_FILENO);
    close(fd[0]);
    close(fd[1]);
    execlp("gzip", "gzip", "-dc", "--", path.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fd[1]);
  std::vector<std::uint8_t> bytes;
  std::uint8_t buf[1 << 16];
  for (ssize_t n; (n = read(fd[0], buf, sizeof buf)) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    bytes.insert(bytes.end(), buf, buf + n);
  }
  close(fd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw DataError("`gzip -dc " + path + "` failed" +
                    (WIFEXITED(status) && WEXITSTATUS(status) == 127 ? std::string(" (gzip not found)") : ""));
  return bytes;
}

/// The bytes of <dir>/<name>, or of <dir>/<name>.gz unpacked.
std::vector<std::uint8_t> read_file_bytes(const std::string& dir, const std::string& name) {
  namespace fs = std::filesystem;
  const fs::path raw = fs::path(dir) / name, gz = fs::path(dir) / (name + ".gz");
  if (fs::exists(raw)) {
    std::ifstream f(raw, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
  }
  if (fs::exists(gz)) return gunzip(gz.string());
  throw DataError("missing " + gz.string());
}

std::uint32_t big_endian(const std::vector<std::uint8_t>& b, std::size_t at) {
  return (std::uint32_t(b[at]) << 24) | (std::uint32_t(b[at + 1]) << 16) | (std::uint32_t(b[at + 2]) << 8) | b[at + 3];
}

/// An IDX file of unsigned bytes (type 0x08) with `dims` dimensions: returns the payload, and the
/// sizes in `shape`. Header: 0x00 0x00 0x08 dims, then dims big-endian uint32 sizes.
std::vector<std::uint8_t> read_idx(const std::string& dir, const std::string& name, std::size_t dims,
                                   std::vector<std::size_t>& shape) {
  std::vector<std::uint8_t> b = read_file_bytes(dir, name);
  const std::size_t header = 4 + 4 * dims;
  if (b.size() < header || big_endian(b, 0) != (0x0800u | dims))
    throw DataError(name + ": not an IDX file of unsigned bytes with " + std::to_string(dims) + " dimensions");
  shape.clear();
  std::size_t n = 1;
  for (std::size_t d = 0; d < dims; ++d) n *= shape.emplace_back(big_endian(b, 4 + 4 * d));
  if (b.size() != header + n)
    throw DataError(name + ": " + std::to_string(b.size() - header) + " bytes of data, the header says " +
                    std::to_string(n));
  return {b.begin() + static_cast<std::ptrdiff_t>(header), b.end()};
}

/// Images (n × 28 × 28 bytes, row-major) and their labels.
struct Images {
  std::vector<std::uint8_t> pixels;
  std::vector<std::uint8_t> labels;
  std::size_t size() const { return labels.size(); }
};

Images load(const std::string& dir, const std::string& prefix) {
  std::vector<std::size_t> is, ls;
  Images d{read_idx(dir, prefix + "-images-idx3-ubyte", 3, is), read_idx(dir, prefix + "-labels-idx1-ubyte", 1, ls)};
  if (is[1] != rows || is[2] != cols || is[0] != ls[0])
    throw DataError(prefix + ": " + std::to_string(is[0]) + " images of " + std::to_string(is[1]) + "x" +
                    std::to_string(is[2]) + " and " + std::to_string(ls[0]) + " labels");
  for (std::uint8_t l : d.labels)
    if (l >= classes) throw DataError(prefix + ": label " + std::to_string(l) + " is not a class");
  return d;
}

// ---- batches ----

/// The model's and the batches' dtype: float32, or float64 with the argument dtype=f64.
Dtype g_dtype = float32;

/// Images `ids[begin, end)` as one (time = 28 rows, features = 28 pixels, batch) sequence, pixels / 255,
/// and their labels: step t, column b is row t of image ids[begin + b].
std::pair<Tensor, Indices> batch_of(const Images& d, const std::vector<std::size_t>& ids, std::size_t begin,
                                    std::size_t end) {
  const std::size_t n = end - begin;
  std::vector<float> x(rows * cols * n);
  Indices y(n);
  for (std::size_t b = 0; b < n; ++b) {
    const std::uint8_t* img = d.pixels.data() + ids[begin + b] * rows * cols;
    for (std::size_t t = 0; t < rows; ++t)
      for (std::size_t f = 0; f < cols; ++f) x[(t * cols + f) * n + b] = static_cast<float>(img[t * cols + f]) / 255.0f;
    y[b] = d.labels[ids[begin + b]];
  }
  return {Tensor::from_vector(x, {rows, cols, n}, g_dtype), y};
}

/// Shuffles `v` in place with `gen` (Fisher–Yates; deterministic for a seed).
void shuffle(std::vector<std::size_t>& v, Generator& gen) {
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[gen.integer(i)]);
}

/// Mean loss, accuracy and confusion matrix (true class × predicted class) of `model` on `ids`.
struct Evaluation {
  double loss = 0, accuracy = 0;
  std::array<std::array<std::size_t, classes>, classes> confusion{};
};

Evaluation evaluate(Module& model, const Images& d, const std::vector<std::size_t>& ids) {
  NoGradGuard no_grad;  // nothing recorded: a forward pass only
  model.eval();
  Evaluation e;
  std::size_t correct = 0;
  constexpr std::size_t chunk = 1000;
  for (std::size_t begin = 0; begin < ids.size(); begin += chunk) {
    const std::size_t end = std::min(begin + chunk, ids.size()), n = end - begin;
    auto [x, y] = batch_of(d, ids, begin, end);
    Tensor logits = model(x);
    e.loss += cross_entropy(logits, y, {.reduction = Reduction::sum}).item();
    const std::vector<double> z = logits.to_vector();  // (classes, n): z[c·n + b]
    for (std::size_t b = 0; b < n; ++b) {
      std::size_t best = 0;
      for (std::size_t c = 1; c < classes; ++c)
        if (z[c * n + b] > z[best * n + b]) best = c;
      correct += best == static_cast<std::size_t>(y[b]);
      ++e.confusion[y[b]][best];
    }
  }
  model.train();
  e.loss /= static_cast<double>(ids.size());
  e.accuracy = static_cast<double>(correct) / static_cast<double>(ids.size());
  return e;
}

std::string confusion_table(const Evaluation& e) {
  std::ostringstream s;
  s << std::setw(13) << "true \\ pred";
  for (std::size_t c = 0; c < classes; ++c) s << std::setw(6) << c;
  s << "   recall\n";
  for (std::size_t t = 0; t < classes; ++t) {
    std::size_t total = 0;
    s << std::setw(2) << t << " " << std::setw(10) << std::left << class_names[t] << std::right;
    for (std::size_t c = 0; c < classes; ++c) {
      s << std::setw(6) << e.confusion[t][c];
      total += e.confusion[t][c];
    }
    s << "   " << ex::num(total ? double(e.confusion[t][t]) / double(total) : 0.0, "%.3f") << "\n";
  }
  return s.str();
}

/// The positional `key=value` arguments, checked: an unknown key or a bad value exits with the usage.
std::map<std::string, std::string> options(const ex::Args& args) {
  std::map<std::string, std::string> kv;
  for (const std::string& a : args.rest) {
    const std::size_t eq = a.find('=');
    const std::string key = a.substr(0, eq);
    if (eq == std::string::npos || (key != "epochs" && key != "train" && key != "batch" && key != "data" && key != "dtype"))
      args.fail("unknown argument '" + a + "' (epochs=N, train=N, batch=N, data=DIR, dtype=f32|f64)");
    kv[key] = a.substr(eq + 1);
  }
  if (kv.count("dtype") && kv["dtype"] != "f32" && kv["dtype"] != "f64") args.fail("dtype= takes f32 or f64, not '" + kv["dtype"] + "'");
  if (kv.count("data") && kv["data"].empty()) args.fail("data= needs a folder");
  return kv;
}

/// A numeric option as a whole number in [lo, hi], or `fallback` when it is not given.
std::size_t option(const ex::Args& args, const std::map<std::string, std::string>& kv, const std::string& key,
                   std::size_t fallback, std::size_t lo, std::size_t hi) {
  const auto it = kv.find(key);
  return it == kv.end() ? fallback : args.whole(key + "=", it->second, lo, hi);
}

}  // namespace

int run(World& world, int argc, char** argv) {
  if (!world.is_root()) std::cout.setstate(std::ios::failbit);  // rank 0 alone prints
  ex::Args args(argc, argv, "fashion", {.positional = "[epochs=N] [train=N] [batch=N] [data=DIR] [dtype=f32|f64]"});
  const std::map<std::string, std::string> kv = options(args);
  if (kv.count("dtype") && kv.at("dtype") == "f64") g_dtype = float64;
  const auto start = std::chrono::steady_clock::now();

  // The budget. Full run: every one of the 55,000 training images once per epoch, 8 epochs, batches of
  // 64 (about 10 minutes on one core, single-threaded OpenBLAS, on a busy 2-core machine).
  // --quick: 2 epochs of 10 batches of 64, validation on 500 images, test on the first 1,000.
  struct {
    std::size_t epochs, train, batch, val_eval, test_eval;
  } budget = args.quick ? decltype(budget){2, 10 * 64, 64, 500, 1000} : decltype(budget){8, 55000, 64, 5000, 10000};
  budget.epochs = option(args, kv, "epochs", budget.epochs, 1, 1000);
  budget.train = option(args, kv, "train", budget.train, 1, 55000);  // the training images left after validation's
  budget.batch = option(args, kv, "batch", budget.batch, 1, budget.train);  // at least one batch per epoch
  const std::string dir = kv.count("data") ? kv.at("data") : default_dir;

  Images train_set, test_set;
  try {
    train_set = load(dir, "train");
    test_set = load(dir, "t10k");
  } catch (const DataError& e) {
    std::cerr << "fashion: cannot read Fashion-MNIST from " << dir << ": " << e.what() << "\n"
              << "fashion: it comes from Debian's " << package << " package: apt-get install " << package
              << "  (or: bash scripts/example.sh fashion)\n";
    return 1;
  }
  std::cout << "Fashion-MNIST from " << dir << ": " << train_set.size() << " training and " << test_set.size()
            << " test images of " << rows << "x" << cols << "\n";

  // Hold out 5,000 training images for validation, drawn with the seed.
  Generator gen(args.seed);
  std::vector<std::size_t> order(train_set.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  shuffle(order, gen);
  const std::size_t n_val = 5000;
  std::vector<std::size_t> val_ids(order.end() - n_val, order.end()), train_ids(order.begin(), order.end() - n_val);
  val_ids.resize(std::min(val_ids.size(), budget.val_eval));
  std::vector<std::size_t> test_ids(std::min(test_set.size(), budget.test_eval));
  for (std::size_t i = 0; i < test_ids.size(); ++i) test_ids[i] = i;
  budget.train = std::min(budget.train, train_ids.size());
  const std::size_t batches = budget.train / budget.batch;  // a last partial batch is dropped

  // The model: the LSTM's last output (return_sequences = false) into a Dense layer giving logits.
  Chain model(LSTM(cols, hidden, {.dtype = g_dtype}, {.return_sequences = false}, gen),
              Dense(hidden, classes, {}, true, g_dtype, gen));
  std::cout << model.summary() << "\n";
  Adam opt(model.parameters(), {.lr = 1e-3});
  std::cout << opt.str() << ", batch " << budget.batch << ", " << batches << " batches (" << batches * budget.batch
            << " of the " << train_ids.size() << " training images) per epoch, " << budget.epochs << " epoch"
            << (budget.epochs == 1 ? "" : "s") << "\n";

  // Data-parallel: rank 0's weights on every rank, gradients averaged over the ranks before each step.
  // Rank r trains on images [begin + B·r/N, begin + B·(r+1)/N) of each global batch of B (N ranks).
  DataParallel ddp(model, opt, world);
  const std::size_t n_ranks = static_cast<std::size_t>(world.size()), rank = static_cast<std::size_t>(world.rank());
  const std::size_t part_begin = budget.batch * rank / n_ranks, part_end = budget.batch * (rank + 1) / n_ranks;

  // Each epoch sees the training images in a fresh order (drawn with the seed).
  std::vector<std::size_t> epoch_ids = train_ids;
  std::vector<double> batch_loss;
  std::vector<double> val_acc;
  double val_seconds = 0;  // inside fit's epoch times; subtracted to give the time per batch
  History history = fit(
      opt, batches,
      [&](std::size_t, std::size_t b) {
        if (b == 0) shuffle(epoch_ids, gen);
        auto [x, y] = batch_of(train_set, epoch_ids, b * budget.batch + part_begin, b * budget.batch + part_end);
        Tensor loss = cross_entropy(model(x), y);
        batch_loss.push_back(loss.item());
        return loss;
      },
      {.epochs = budget.epochs,
       .validate =
           [&] {
             const auto t0 = std::chrono::steady_clock::now();
             const Evaluation e = evaluate(model, train_set, val_ids);
             val_seconds += ex::seconds_since(t0);
             val_acc.push_back(e.accuracy);
             return e.loss;
           },
       .on_epoch_end = [&](const EpochRecord& r) {
         std::cout << "  epoch " << r.epoch << ": validation accuracy " << ex::num(val_acc.back(), "%.4f") << "\n";
       },
       .out = &std::cout,
       .parallel = &ddp,
       .share = [&](std::size_t, std::size_t) { return double(part_end - part_begin) / double(budget.batch); }});
  double train_seconds = -val_seconds;
  for (const auto& r : history.epochs) train_seconds += r.seconds;
  if (!world.is_root()) return 0;  // the test, the files and the plots: rank 0's

  const Evaluation test = evaluate(model, test_set, test_ids);
  std::cout << "\nTest set (" << test_ids.size() << " images): loss " << ex::num(test.loss) << ", accuracy "
            << ex::num(test.accuracy, "%.4f") << "\n" << confusion_table(test);

  // Files: fit's history, every batch's loss, validation accuracy, the confusion matrix, and plots.
  history.write_csv(args.path("history.csv"));
  {
    std::string s = "batch,epoch,loss\n";
    for (std::size_t i = 0; i < batch_loss.size(); ++i)
      s += std::to_string(i + 1) + "," + ex::num(double(i + 1) / double(batches), "%.6f") + "," +
           ex::num(batch_loss[i], "%.6g") + "\n";
    write_file_atomic(args.path("batches.csv"), s);
    s = "epoch,val_loss,val_accuracy\n";
    for (std::size_t i = 0; i < val_acc.size(); ++i)
      s += std::to_string(i + 1) + "," + ex::num(history.epochs[i].val_loss, "%.6g") + "," +
           ex::num(val_acc[i], "%.6f") + "\n";
    write_file_atomic(args.path("accuracy.csv"), s);
    s = "true\\predicted";
    for (const char* c : class_names) s += std::string(",") + c;
    s += "\n";
    for (std::size_t t = 0; t < classes; ++t) {
      s += class_names[t];
      for (std::size_t c = 0; c < classes; ++c) s += "," + std::to_string(test.confusion[t][c]);
      s += "\n";
    }
    write_file_atomic(args.path("confusion.csv"), s);
  }
  // The learning curve: each batch's loss, its running mean over ~1/10 epoch, and the validation loss
  // at each epoch's end, against epochs (fractional: batch / batches per epoch).
  ex::Series raw{"batch loss", {}, {}, "points pt 7 ps 0.2 lc rgb '#c0c0c0'"}, smooth{"running mean", {}, {}}, val{"validation loss", {}, {}, "linespoints"};
  const std::size_t window = std::max<std::size_t>(1, batches / 10);
  double sum = 0;
  for (std::size_t i = 0; i < batch_loss.size(); ++i) {
    const double x = double(i + 1) / double(batches);
    raw.x.push_back(x);
    raw.y.push_back(batch_loss[i]);
    sum += batch_loss[i] - (i >= window ? batch_loss[i - window] : 0.0);
    smooth.x.push_back(x);
    smooth.y.push_back(sum / double(std::min(i + 1, window)));
  }
  val.x.push_back(0);
  val.y.push_back(std::log(double(classes)));  // an untrained classifier's expected loss, ln 10
  for (const auto& r : history.epochs) {
    val.x.push_back(double(r.epoch));
    val.y.push_back(r.val_loss);
  }
  ex::plot(args.path("learning_curve.png"), "Sequential Fashion-MNIST, LSTM(128): loss", "epoch", "cross-entropy",
           {raw, smooth, val}, true);
  ex::plot_history(args.path("history.png"), "Sequential Fashion-MNIST, LSTM(128): loss per epoch", history);
  ex::Series acc{"validation accuracy", {}, {}, "linespoints"}, test_acc{"test accuracy", {test.accuracy}, {double(budget.epochs)}, "points pt 7 ps 1.5"};
  for (std::size_t i = 0; i < val_acc.size(); ++i) {
    acc.x.push_back(double(i + 1));
    acc.y.push_back(val_acc[i]);
  }
  ex::plot(args.path("accuracy.png"), "Sequential Fashion-MNIST, LSTM(128): accuracy", "epoch", "accuracy", {acc, test_acc});

  const double wall = ex::seconds_since(start);
  std::cout << "training " << ex::num(train_seconds, "%.1f") << " s ("
            << ex::num(1e3 * train_seconds / double(std::max<std::size_t>(1, batch_loss.size())), "%.1f")
            << " ms per batch of " << budget.batch << ", " << ex::num(train_seconds / double(budget.epochs), "%.1f")
            << " s per epoch), validation " << ex::num(val_seconds, "%.1f") << " s; wall " << ex::num(wall, "%.1f")
            << " s\n";
  if (world.size() > 1)
    std::cout << "data-parallel: " << world.size() << " ranks, "
              << ex::num(double(batch_loss.size() * budget.batch) / train_seconds, "%.0f") << " images/s\n";
  ex::result({{"example", "fashion"},
              {"test_acc", ex::num(test.accuracy, "%.4f")},
              {"epochs", std::to_string(budget.epochs)},
              {"train_images", std::to_string(batches * budget.batch)},
              {"batch", std::to_string(budget.batch)},
              {"seconds", ex::num(wall, "%.0f")}});
  return test.accuracy > 1.5 / double(classes) || args.quick ? 0 : 1;
}

int main(int argc, char** argv) {
  World world;  // MPI's ranks under mpirun, else this one process (comm/communicator.hpp)
  // Under mpirun an exception must end every rank: it goes on past World, whose terminate handler ends
  // the job with the message (unwinding past World would finalize MPI and leave the other ranks
  // waiting). One process: the message and exit status 1, as every example (ex::guard).
  if (world.is_mpi()) return run(world, argc, argv);
  return ex::guard("fashion", [&] { return run(world, argc, argv); });
}
