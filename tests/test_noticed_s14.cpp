// What earlier sessions noticed and left (session 14): DistributedSampler from several threads at
// once and over counts no permutation could hold; a module load that names both its missing and its
// unexpected keys.
#include <doctest/doctest.h>

#include <atomic>
#include <limits>
#include <thread>
#include <vector>

#include <rewind.hpp>

using namespace rwd;

TEST_CASE("sampler s14: threads asking for different epochs at once get each epoch's own examples") {
  constexpr std::size_t n = 5000, batch = 100;
  constexpr int epochs = 6;
  // Each epoch's batches, from a sampler of its own, one thread.
  std::vector<std::vector<std::vector<std::size_t>>> want(epochs);
  for (int e = 0; e < epochs; ++e) {
    DistributedSampler s(n, batch, 7, 1, 3);
    for (std::size_t b = 0; b < s.batches(); ++b) want[e].push_back(s.indices(e, b));
  }
  DistributedSampler shared(n, batch, 7, 1, 3);
  const DistributedSampler copy = shared;  // a copy answers the same, from any thread
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      const DistributedSampler& s = t % 2 ? copy : shared;
      for (int round = 0; round < 300; ++round) {
        const int e = (round + t) % epochs;  // the threads keep moving the latest epoch under each other
        const std::size_t b = static_cast<std::size_t>(round * 7 + t) % s.batches();
        if (s.indices(e, b) != want[e][b]) ++wrong;
      }
    });
  for (auto& th : threads) th.join();
  CHECK(wrong.load() == 0);
}

TEST_CASE("sampler s14: an unshuffled sampler over SIZE_MAX examples answers without a permutation") {
  constexpr std::size_t max = std::numeric_limits<std::size_t>::max();
  DistributedSampler s(max, 4, 1, 1, 2, /*shuffle=*/false);
  CHECK(s.indices(0, 5) == std::vector<std::size_t>{22, 23});
  CHECK(s.global_batch(3, 5) == std::vector<std::size_t>{20, 21, 22, 23});
  // the last global batch: SIZE_MAX = 4·q + 3 examples, so it holds 3; rank 1 takes the last 2 of them
  CHECK(s.indices(0, s.batches() - 1) == std::vector<std::size_t>{max - 2, max - 1});
}

TEST_CASE("sampler s14: a shuffled sampler over more examples than memory holds says so") {
  constexpr std::size_t max = std::numeric_limits<std::size_t>::max();
  DistributedSampler s(max / 2, 4, 1, 0, 2);
  CHECK_THROWS_WITH_AS(s.indices(0, 0), "DistributedSampler: the permutation of 9223372036854775807 examples does not "
                                        "fit in memory", ValueError);
  // and the sampler still answers for a count that fits
  DistributedSampler small(10, 4, 1, 0, 2);
  CHECK(small.indices(0, 0).size() == 2);
}

TEST_CASE("module s14: a strict load with keys both missing and unexpected names both lists") {
  Generator gen(3);
  Dense d(2, 3, {}, true, float32, gen);
  NamedTensors state = d.named_parameters();
  for (auto& [k, t] : state)
    if (k == "weight") k = "Weight";  // renamed: one key missing, one unexpected
  CHECK_THROWS_WITH_AS(d.load_state_dict(state), "load_state_dict: missing key 'weight'; unexpected key 'Weight'",
                       ValueError);
}
