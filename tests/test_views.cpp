// Views (core/tensor.hpp): reshape, squeeze, unsqueeze and a contiguous slice share their input's
// storage instead of copying it. Checked here: the sharing itself (data pointers), gradients through
// chains of views (finite differences, and bit for bit against a copying path), tape clears with a view
// or its base kept, writes through a view and into its base, the sweep's in-place adds never reaching
// values a view reads, and zero-size views.
#include <doctest/doctest.h>

#include "support.hpp"

#include <thread>
#include <vector>

#include <rewind.hpp>

using namespace rwd;

namespace {

Tensor f64(const std::vector<double>& v, const Shape& s) { return Tensor::from_vector(v, s, float64); }

Tensor randn64(const Shape& s, Generator& gen, Dtype dtype = float64) { return Tensor::randn(s, gen, dtype); }

/// An integer in [0, n).
std::size_t draw(Generator& gen, std::size_t n) { return static_cast<std::size_t>(gen.uniform() * static_cast<double>(n)); }

Indices range(std::int64_t a, std::int64_t b) {
  Indices out;
  for (std::int64_t i = a; i < b; ++i) out.push_back(i);
  return out;
}

}  // namespace

TEST_CASE("views: reshape, squeeze, unsqueeze and a leading-axis slice share their input's storage") {
  Generator gen(7);
  const Tensor x = randn64({4, 3, 2}, gen);
  const double* base = x.data<double>();

  const Tensor r = reshape(x, {12, 2});
  CHECK(r.is_view());
  CHECK(r.shares_storage(x));
  CHECK(r.data<double>() == base);
  CHECK(r.shape() == Shape{12, 2});

  const Tensor s = slice(x, 0, 1, 3);  // rows 1 and 2: elements [6, 18)
  CHECK(s.is_view());
  CHECK(s.data<double>() == base + 6);
  CHECK(s.shape() == Shape{2, 3, 2});
  const std::vector<double> xv = x.to_vector();
  CHECK(s.to_vector() == std::vector<double>(xv.begin() + 6, xv.begin() + 18));

  const Tensor one = squeeze(slice(x, 0, 3, 4), 0);  // the last step of a (time, …) sequence
  CHECK(one.is_view());
  CHECK(one.data<double>() == base + 18);
  CHECK(one.shape() == Shape{3, 2});

  const Tensor u = unsqueeze(one, 2);
  CHECK(u.is_view());
  CHECK(u.data<double>() == base + 18);
  CHECK(u.shape() == Shape{3, 2, 1});

  // A view of a view shares the first base.
  const Tensor vv = slice(reshape(s, {2, 6}), 0, 1, 2);
  CHECK(vv.data<double>() == base + 12);
  CHECK(vv.shares_storage(x));

  // Along a later axis with only size-1 axes before it, the slice is contiguous too.
  const Tensor y = randn64({1, 5, 2}, gen);
  const Tensor ys = slice(y, 1, 2, 4);
  CHECK(ys.is_view());
  CHECK(ys.data<double>() == y.data<double>() + 4);

  // Not contiguous: copied, as before.
  const Tensor cols = slice(x, 1, 0, 2);
  CHECK_FALSE(cols.is_view());
  CHECK_FALSE(cols.shares_storage(x));
  const Tensor stepped = slice(x, 0, 0, 4, 2);
  CHECK_FALSE(stepped.is_view());

  // A tensor that made its storage is not a view; detach and clone copy.
  CHECK_FALSE(x.is_view());
  CHECK_FALSE(r.detach().shares_storage(x));
  CHECK_FALSE(r.detach().is_view());
  CHECK_FALSE(s.clone().shares_storage(x));
}

TEST_CASE("views: recorded views are tape entries (free forward) whose gradients match the copying path bit for bit") {
  Generator gen(11);
  for (int trial = 0; trial < 5; ++trial) {
    const std::size_t T = 2 + draw(gen, 4), F = 1 + draw(gen, 3), B = 1 + draw(gen, 3);
    Tensor x = randn64({T, F, B}, gen).set_requires_grad();
    const Tensor w = randn64({F, B}, gen);
    // Through views: every step, squeezed, weighted, and one step used twice (fan-out).
    Tensor loss_v = Tensor::scalar(0.0, float64);
    {
      const std::size_t before = Tape::current().size();
      std::vector<Tensor> steps;
      for (std::size_t t = 0; t < T; ++t) steps.push_back(squeeze(slice(x, 0, t, t + 1), 0));
      for (const Tensor& st : steps) CHECK(st.is_view());
      CHECK(Tape::current().size() == before + 2 * T);  // slice and reshape entries, recorded as before
      for (std::size_t t = 0; t < T; ++t) loss_v = loss_v + sum(tanh(steps[t]) * w * static_cast<double>(t + 1));
      loss_v = loss_v + sum(reshape(steps[0], {F * B}) * reshape(steps[0], {F * B}));
    }
    loss_v.backward();
    const std::vector<double> g_views = x.grad().to_vector();
    x.zero_grad(true);
    // The same function through copies: index_select picks the same rows (and index_add adds them back).
    Tensor loss_c = Tensor::scalar(0.0, float64);
    {
      std::vector<Tensor> steps;
      for (std::size_t t = 0; t < T; ++t)
        steps.push_back(permute(permute(index_select(x, 0, range(t, t + 1)), {1, 2, 0}), {2, 0, 1}));
      for (std::size_t t = 0; t < T; ++t) {
        const Tensor st = sum(steps[t], std::vector<int>{0}, false);  // drops the size-1 axis by copying
        CHECK_FALSE(st.is_view());
        loss_c = loss_c + sum(tanh(st) * w * static_cast<double>(t + 1));
      }
      const Tensor s0 = sum(steps[0], std::vector<int>{0}, false);
      loss_c = loss_c + sum(s0 * s0);
    }
    loss_c.backward();
    CHECK(x.grad().to_vector() == g_views);
  }
}

TEST_CASE("views: gradcheck and gradgradcheck in float64 through chains of views, with fan-out and views of views") {
  Generator gen(3);
  for (int trial = 0; trial < 6; ++trial) {
    const std::size_t a = 2 + draw(gen, 3), b = 1 + draw(gen, 3), c = 1 + draw(gen, 3);
    const Tensor x = randn64({a, b, c}, gen).set_requires_grad();
    const std::size_t lo = draw(gen, a - 1), hi = lo + 1 + draw(gen, a - lo - 1);
    auto f = [&](const std::vector<Tensor>& in) {
      const Tensor v = slice(in[0], 0, lo, hi);                        // rows lo..hi
      const Tensor flat = reshape(v, {(hi - lo) * b * c});             // a view of a view
      const Tensor back = unsqueeze(reshape(flat, {hi - lo, b, c}), 0);  // and back, with a new axis
      const Tensor first = squeeze(slice(squeeze(back, 0), 0, 0, 1), 0);  // the first of them
      return sum(tanh(flat) * flat) + sum(exp(first) * first) + sum(back * back);  // fan-out of each view
    };
    CHECK(gradcheck(f, {x}));
    CHECK(gradgradcheck(f, {x}));
  }
}

TEST_CASE("views: a tape clear releases a recorded view and its base independently, the storage lives on") {
  Generator gen(5);
  const Tensor p = randn64({3, 4}, gen).set_requires_grad();
  SUBCASE("the view kept, its base released") {
    const Tensor y = tanh(p);
    const std::vector<double> want = y.to_vector();
    const Tensor v = reshape(y, {12});
    CHECK(v.shares_storage(y));
    v.keep_on_clear();
    sum(v * v).backward();  // clears the tape
    CHECK(message_of<TapeError>([&] { (void)y.to_vector(); }).find("no longer available") != std::string::npos);
    CHECK(v.to_vector() == want);  // read after the base let go (ASan: no use after free)
    const Tensor row = slice(v, 0, 4, 8);  // a view of the kept view
    CHECK(row.to_vector() == std::vector<double>(want.begin() + 4, want.begin() + 8));
  }
  SUBCASE("the base kept, its view released") {
    const Tensor y = tanh(p);
    const std::vector<double> want = y.to_vector();
    y.keep_on_clear();
    const Tensor v = slice(y, 0, 1, 2);
    sum(v * v).backward();
    CHECK(message_of<TapeError>([&] { (void)v.to_vector(); }).find("no longer available") != std::string::npos);
    CHECK(y.to_vector() == want);
  }
}

TEST_CASE("views: writes go through — into the base shows in the view, into the view reaches the base") {
  Tensor x = f64({0, 1, 2, 3, 4, 5}, {2, 3});
  Tensor v = slice(x, 0, 1, 2);  // the second row
  Tensor r = reshape(x, {6});
  x.fill(7.0);
  CHECK(v.to_vector() == std::vector<double>{7, 7, 7});
  v.assign(f64({1, 2, 3}, {1, 3}));
  CHECK(x.to_vector() == std::vector<double>{7, 7, 7, 1, 2, 3});
  CHECK(r.to_vector() == std::vector<double>{7, 7, 7, 1, 2, 3});
  r.data<double>()[0] = -1;
  CHECK(x.at({0, 0}) == -1);

  // An optimizer updates its parameters in place: a view taken of one reads the updated values.
  Tensor w = f64({1, 2, 3, 4}, {2, 2}).set_requires_grad();
  const Tensor flat = [&] {
    NoGradGuard no_grad;
    return reshape(w, {4});
  }();
  CHECK(flat.shares_storage(w));
  SGD opt({w}, SGDOptions{0.5});
  sum(w * w).backward();  // dw = 2w
  opt.step();             // w -= 0.5 · 2w = 0
  CHECK(w.to_vector() == std::vector<double>{0, 0, 0, 0});
  CHECK(flat.to_vector() == std::vector<double>{0, 0, 0, 0});
}

TEST_CASE("views: the sweep's in-place adds never change values a view still reads") {
  // .grad() is added into in place by the next backward; a view taken of it keeps its values (the
  // gradient gets a fresh buffer instead), for the element-wise add and for a GEMM into the gradient.
  SUBCASE("element-wise accumulation into .grad()") {
    const Tensor p = f64({1, 2, 3, 4}, {2, 2}).set_requires_grad();
    sum(p * p).backward();  // 2p
    const Tensor g_view = reshape(p.grad(), {4});
    CHECK(g_view.shares_storage(p.grad()));
    sum(p * p).backward();  // .grad() = 4p
    CHECK(p.grad().to_vector() == std::vector<double>{4, 8, 12, 16});
    CHECK(g_view.to_vector() == std::vector<double>{2, 4, 6, 8});
  }
  SUBCASE("a matrix product into .grad() (β = 1)") {
    const Tensor W = f64({1, 2, 3, 4, 5, 6}, {2, 3}).set_requires_grad();
    const Tensor x = f64({1, 1, 1}, {3, 1});
    sum(matmul(W, x)).backward();  // dW = ones (2, 3)
    const Tensor row = slice(W.grad(), 0, 1, 2);
    CHECK(row.shares_storage(W.grad()));
    sum(matmul(W, x)).backward();
    CHECK(W.grad().to_vector() == std::vector<double>(6, 2.0));
    CHECK(row.to_vector() == std::vector<double>(3, 1.0));
  }
  SUBCASE("a slice's region into .grad()") {
    const Tensor p = f64({1, 2, 3, 4}, {4}).set_requires_grad();
    sum(slice(p, 0, 0, 3, 2)).backward();  // a strided slice: its region is added into .grad()
    const Tensor g_view = reshape(p.grad(), {2, 2});
    sum(slice(p, 0, 0, 3, 2)).backward();
    CHECK(p.grad().to_vector() == std::vector<double>{2, 0, 2, 0});
    CHECK(g_view.to_vector() == std::vector<double>{1, 0, 1, 0});
  }
}

TEST_CASE("views: zero-size views and their gradients") {
  const Tensor x = Tensor::zeros({4, 3}, float64).set_requires_grad();
  const Tensor none = slice(x, 0, 2, 2);
  CHECK(none.shape() == Shape{0, 3});
  CHECK(none.is_view());
  const Tensor flat = reshape(none, {0});
  CHECK(flat.shape() == Shape{0});
  CHECK(flat.to_vector().empty());
  (sum(flat) + sum(x)).backward();
  CHECK(x.grad().to_vector() == std::vector<double>(12, 1.0));

  const Tensor empty = Tensor::zeros({0, 5});
  const Tensor r = reshape(empty, {5, 0});
  CHECK(r.shape() == Shape{5, 0});
  CHECK(unsqueeze(r, 0).shape() == Shape{1, 5, 0});
  CHECK(slice(empty, 0, 0, 0).shape() == Shape{0, 5});
}

TEST_CASE("views: gradcheck's float64 promotion of a view input leaves it sharing its base") {
  const Tensor base = Tensor::from_vector(std::vector<double>{0.1, 0.2, 0.3, 0.4}, {4});
  Tensor v = reshape(base, {2, 2});
  v.set_requires_grad();
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return sum(tanh(in[0])); }, {v}));
  CHECK(v.dtype() == float32);
  CHECK(v.shares_storage(base));
  CHECK(v.data<float>() == base.data<float>());
}

TEST_CASE("views: assign between overlapping views of one storage gives what a copy of the source would") {
  Tensor x = f64({0, 1, 2, 3, 4, 5, 6, 7}, {4, 2});
  Tensor head = slice(x, 0, 0, 3), tail = slice(x, 0, 1, 4);  // rows 0-2 and 1-3: they overlap
  head.assign(tail);  // rows shift up
  CHECK(x.to_vector() == std::vector<double>{2, 3, 4, 5, 6, 7, 6, 7});
  x = f64({0, 1, 2, 3, 4, 5, 6, 7}, {4, 2});
  head = slice(x, 0, 0, 3), tail = slice(x, 0, 1, 4);
  tail.assign(head);  // rows shift down: a forward copy would smear row 0 over all of them
  CHECK(x.to_vector() == std::vector<double>{0, 1, 0, 1, 2, 3, 4, 5});
}

TEST_CASE("views: threads viewing one base at once share one count, and the storage is freed once") {
  // The first view of a tensor makes the count its storage is shared by (core/detail/storage.hpp);
  // threads that view a base at the same time must agree on one (ASan: no double free, no leak).
  for (int round = 0; round < 50; ++round) {
    const Tensor base = Tensor::arange(64, float64);
    std::vector<Tensor> views(4);
    std::vector<std::thread> threads;
    for (std::size_t k = 0; k < views.size(); ++k)
      threads.emplace_back([&, k] { views[k] = reshape(base, {8, 8}); });
    for (std::thread& t : threads) t.join();
    for (const Tensor& v : views) {
      CHECK(v.shares_storage(base));
      CHECK(v.data<double>() == base.data<double>());
    }
    CHECK(views[3].at({7, 7}) == 63);
  }
}
