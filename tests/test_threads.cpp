#include <doctest/doctest.h>

#include <rewind.hpp>

#include "support.hpp"

using namespace rwd;

TEST_CASE("threads: set_num_threads sets OpenBLAS's thread count, and products agree across counts") {
  const int before = get_num_threads();
  CHECK(before >= 1);
  Generator gen(3);
  const Tensor a = Tensor::uniform({300, 200}, -1, 1, gen, Dtype::f64), b = Tensor::uniform({200, 250}, -1, 1, gen, Dtype::f64);
  set_num_threads(1);
  CHECK(get_num_threads() == 1);
  const std::vector<double> one = matmul(a, b).to_vector();
  set_num_threads(2);
  CHECK(get_num_threads() == 2);
  const std::vector<double> two = matmul(a, b).to_vector();
  for (std::size_t i = 0; i < one.size(); i += 97) CHECK(one[i] == doctest::Approx(two[i]).epsilon(1e-12));
  CHECK(contains(message_of<ValueError>([] { set_num_threads(0); }), "at least 1, got 0"));
  // A count past any machine's (a typo, an unsigned −1 cast) is refused before the pool starts a thread.
  CHECK(message_of<ValueError>([] { set_num_threads(kMaxThreads + 1); }) ==
        "set_num_threads: the thread count must be at most 1024, got 1025");
  CHECK(contains(message_of<ValueError>([] { set_num_threads(2'000'000'000); }), "at most 1024, got 2000000000"));
  CHECK(get_num_threads() == 2);  // a refused count leaves the one before
  set_num_threads(before);
  CHECK(get_num_threads() == before);
}
