// scripts/fashion_same_start.cpp — the rewind side, run by scripts/fashion_same_start.sh (CMake target
// fashion_same_start, built with the examples, to build/scripts/).
// Loads w0.npz (PyTorch's initial weights) into the same Chain(LSTM(28 => 128), Dense(128 => 10)) with
// load_torch, trains on the same 300 batches in the same order with Adam(1e-3), one loss per batch in
// rewind_losses.txt.
#include <rewind.hpp>
#include <cstdio>
#include <fstream>
#include <string>
using namespace rwd;
int main() {
  const std::size_t N = 300, B = 64;
  std::vector<float> x(N * B * 784);
  std::vector<std::int64_t> y(N * B);
  auto read_all = [](const char* path, char* to, std::size_t bytes) {
    std::ifstream in(path, std::ios::binary);
    if (!in.read(to, static_cast<std::streamsize>(bytes)))
      throw IOError(std::string(path) + ": expected " + std::to_string(bytes) + " bytes (run fashion_same_start.py first)");
  };
  read_all("x.f32", reinterpret_cast<char*>(x.data()), x.size() * 4);
  read_all("y.i64", reinterpret_cast<char*>(y.data()), y.size() * 8);
  Generator gen(0);
  Chain model(LSTM(28, 128, {}, {.return_sequences = false}, gen), Dense(128, 10, {}, true, Dtype::f32, gen));
  load_torch(model, "w0.npz");
  Adam opt(model.parameters(), {.lr = 1e-3});
  std::FILE* f = std::fopen("rewind_losses.txt", "w");
  for (std::size_t b = 0; b < N; ++b) {
    std::vector<float> xb(784 * B);
    Indices yb(B);
    for (std::size_t k = 0; k < B; ++k) {
      const std::size_t i = b * B + k;
      for (std::size_t t = 0; t < 784; ++t) xb[t * B + k] = x[i * 784 + t];
      yb[k] = y[i];
    }
    opt.zero_grad();
    Tensor loss = cross_entropy(model(Tensor::from_vector(xb, {28, 28, B})), yb);
    const double v = loss.item();
    loss.backward();
    opt.step();
    std::fprintf(f, "%zu %.9g\n", b, v);
  }
  std::fclose(f);
}
