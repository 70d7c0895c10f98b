// Hostile inputs to everything that reads or writes files or state: .npy/.npz bytes, the atomic
// writer's targets, state_dict / load_state_dict, PyTorch imports, optimizer state and training
// checkpoints. Each probe feeds what a careless or hostile caller could, and checks for a clear rwd
// exception naming the op (or the file and the key) with nothing changed — never a crash, a hang, an
// allocation the file cannot back, or silently wrong numbers. Files go to a fresh directory under
// /tmp, removed at the end of each test.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <rewind.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

using namespace rwd;
namespace fs = std::filesystem;

namespace {

#define CHECK_CONTAINS CHECK_CONTAINS_ONCE

// ---- a hand-made zip writer: every field of the archive under the test's control ----

std::uint32_t crc32_of(const std::string& s) {
  std::uint32_t c = 0xffffffffu;
  for (const unsigned char b : s) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return ~c;
}

void put16(std::string& s, std::uint32_t v) {
  s += static_cast<char>(v & 0xff);
  s += static_cast<char>((v >> 8) & 0xff);
}
void put32(std::string& s, std::uint32_t v) {
  put16(s, v & 0xffff);
  put16(s, v >> 16);
}

/// One member: its name, the bytes stored in the archive (already compressed if `method` says so),
/// the method, and the uncompressed size and CRC the directory claims.
struct RawMember {
  std::string name;
  std::string data;
  std::uint16_t method = 0;  // 0 stored, 8 deflated, 12 bzip2, 93 zstd
  std::uint32_t size = 0;
  std::uint32_t crc = 0;
};

RawMember stored(const std::string& name, const std::string& bytes) {
  return {name, bytes, 0, static_cast<std::uint32_t>(bytes.size()), crc32_of(bytes)};
}

/// A zip archive (no zip64, no data descriptors) of `members`, in order.
std::string zip_of(const std::vector<RawMember>& members) {
  std::string out, central;
  for (const RawMember& m : members) {
    const auto offset = static_cast<std::uint32_t>(out.size());
    std::string common;
    put16(common, 20);  // version needed
    put16(common, 0);   // flags
    put16(common, m.method);
    put16(common, 0);     // time
    put16(common, 0x21);  // date
    put32(common, m.crc);
    put32(common, static_cast<std::uint32_t>(m.data.size()));
    put32(common, m.size);
    put16(common, static_cast<std::uint32_t>(m.name.size()));
    put16(common, 0);  // extra length
    out += "PK\x03\x04";
    out += common;
    out += m.name;
    out += m.data;
    central += "PK\x01\x02";
    put16(central, 20);  // version made by
    central += common;
    put16(central, 0);  // comment length
    put16(central, 0);  // disk
    put16(central, 0);  // internal attributes
    put32(central, 0);  // external attributes
    put32(central, offset);
    central += m.name;
  }
  const auto cd_offset = static_cast<std::uint32_t>(out.size());
  out += central;
  out += "PK\x05\x06";
  put16(out, 0);
  put16(out, 0);
  put16(out, static_cast<std::uint32_t>(members.size()));
  put16(out, static_cast<std::uint32_t>(members.size()));
  put32(out, static_cast<std::uint32_t>(central.size()));
  put32(out, cd_offset);
  put16(out, 0);
  return out;
}

/// An .npy v1.0 header with the given dict text, padded as NumPy pads it.
std::string npy_header(const std::string& dict) {
  std::string h = dict;
  const std::size_t prefix = 10;
  while ((prefix + h.size() + 1) % 64 != 0) h += ' ';
  h += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  put16(out, static_cast<std::uint32_t>(h.size()));
  return out + h;
}

std::string f4_bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

/// Values of every parameter, as doubles, to compare a model before and after a refused load.
std::vector<std::vector<double>> values_of(const Module& m) {
  std::vector<std::vector<double>> out;
  for (const Tensor& p : m.parameters()) out.push_back(p.to_vector());
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// reading: what is not a regular file, members zip allows but .npz does not use, damaged bytes
// ---------------------------------------------------------------------------------------------------

TEST_CASE("hostile files: load_npz refuses a FIFO by name without opening it (opening one blocks forever)") {
  TempDir dir("rewind-hostile-files");
  const std::string fifo = dir / "pipe.npz";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  // The load runs on a thread; this one watches whether it opened the FIFO (a writer's non-blocking open
  // succeeds only while a reader has it open) and, if so, opens and closes the write end so that the
  // reader sees end-of-file instead of waiting for ever. No timing: it loops until the load returns.
  std::atomic<bool> done{false};
  std::string message;
  bool io_error = false;
  std::thread loader([&] {
    try {
      load_npz(fifo);
    } catch (const IOError& e) {
      io_error = true;
      message = e.what();
    } catch (const std::exception& e) {
      message = e.what();
    }
    done = true;
  });
  bool opened = false;
  while (!done) {
    const int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
    if (fd >= 0) {
      opened = true;
      ::close(fd);
    }
    std::this_thread::yield();
  }
  loader.join();
  CHECK_MESSAGE(!opened, "load_npz opened the FIFO (with no writer it would block for ever)");
  CHECK(io_error);
  CHECK_CONTAINS(message, "load_npz: \"" + fifo + "\"");
  CHECK_CONTAINS(message, "not a regular file");
}

TEST_CASE("hostile files: members compressed other than stored or deflated are refused before anything is allocated") {
  // np.savez stores, np.savez_compressed deflates; zip also knows bzip2 (which libzip inflates), LZMA,
  // zstd, … whose ratios have no useful bound, so a few bytes could claim gigabytes that would be
  // allocated (and zero-filled) before the stream is found short. Here 120 bytes of real bzip2 hold the
  // .npy header of a (16777216,) float32 array and the directory claims its 64 MiB.
  TempDir dir("rewind-hostile-files");
  const std::string file = dir / "bz.npz";
  const std::string bz(
      "\x42\x5a\x68\x39\x31\x41\x59\x26\x53\x59\x94\xc2\x88\x72\x00\x00\x27\xdf\xa0\x60\x10\x40\xe4\x35"
      "\x94\x01\x03\x42\x20\xaf\x45\xdd\x0a\x08\x00\x20\x00\x54\x45\x1e\x93\x4c\x81\x91\xa0\x1a\x06\x99"
      "\x3c\xa1\x14\xf2\x8f\x53\x40\x69\xa7\xa4\x06\x9a\x06\x8d\x03\xe6\x35\x45\x40\xcb\x00\x48\x49\x70"
      "\x78\x9c\x46\x43\x59\xb1\x0d\x11\xbc\x5c\x04\x13\xd2\x00\xa7\x7d\xab\xb6\x83\xdb\xd9\x0d\x84\x89"
      "\x04\x28\x44\x42\x39\x0c\xb7\x33\x01\x3a\xae\x20\xd4\xff\x17\x72\x45\x38\x50\x90\x94\xc2\x88\x72",
      120);
  const std::string head = npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (16777216,), }");
  REQUIRE(head.size() == 128);
  const std::uint32_t claimed = 128u + 64u * 1024 * 1024;
  for (const std::uint16_t method : {std::uint16_t{12}, std::uint16_t{14}, std::uint16_t{93}, std::uint16_t{95}}) {
    CAPTURE(method);
    write_bytes(file, zip_of({{"w.npy", bz, method, claimed, 0}}));
    const std::string msg = message_of<IOError>([&] { load_npz(file); });
    CHECK_CONTAINS(msg, "load_npz: \"" + file + "\": key \"w\"");
    CHECK_CONTAINS(msg, "compression method " + std::to_string(method));
  }
  // The two NumPy writes still load.
  write_bytes(file, zip_of({stored("w.npy", npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }") +
                                                f4_bytes({1.5f, -2.f}))}));
  CHECK(load_npz(file).at(0).second.to_vector() == std::vector<double>{1.5, -2.0});
  save_npz(file, {{"w", Tensor::ones({3})}});
  CHECK(load_npz(file).at(0).second.to_vector() == std::vector<double>{1, 1, 1});
}

TEST_CASE("hostile files: a deflated member that ends early costs the memory of what it holds, not of what it claims") {
  // The directory claims a 64-MiB array; the deflate stream (stored blocks, so its 70 KB pass the
  // 1100:1 bound on what deflate can expand to) holds the header and 70,000 bytes, then ends. The
  // load fails as truncated; until then the pages that were never written must not have been touched
  // (a zero-filled allocation made the lie cost its full 64 MiB). A float32 array for load_npz, a
  // uint8 one for load_npz_all (read as bytes before conversion).
  TempDir dir("rewind-hostile-files");
  const std::string file = dir / "short.npz";
  for (const bool integers : {false, true}) {
    CAPTURE(integers);
    const std::string head = integers ? npy_header("{'descr': '|u1', 'fortran_order': False, 'shape': (67108864,), }")
                                      : npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (16777216,), }");
    const std::string content = head + std::string(70000, '\x01');
    std::string stream;
    for (std::size_t at = 0; at < content.size(); at += 65535) {
      const std::size_t n = std::min<std::size_t>(65535, content.size() - at);
      stream += static_cast<char>(at + n == content.size() ? 1 : 0);  // BFINAL on the last, BTYPE 00: stored
      put16(stream, static_cast<std::uint32_t>(n));
      put16(stream, static_cast<std::uint32_t>(~n & 0xffff));
      stream += content.substr(at, n);
    }
    write_bytes(file, zip_of({{"w.npy", stream, 8, static_cast<std::uint32_t>(head.size()) + 64u * 1024 * 1024, 0}}));
    release_buffer_cache();  // so that the tensor's storage is fresh from the system, not a resident buffer
    std::string msg;
    const std::uint64_t grew = peak_growth([&] {
      msg = message_of<IOError>([&] {
        if (integers)
          load_npz_all(file);
        else
          load_npz(file);
      });
    });
    CHECK_CONTAINS(msg, "\"" + file + "\": key \"w\"");
    CHECK_MESSAGE(grew < 16 * 1024 * 1024, "peak memory grew by " << grew << " bytes");
  }
}

TEST_CASE("hostile files: an end record claiming billions of members is refused without allocating for them") {
  TempDir dir("rewind-hostile-files");
  const std::string file = dir / "many.npz";
  auto put64 = [](std::string& out, std::uint64_t v) {
    put32(out, static_cast<std::uint32_t>(v));
    put32(out, static_cast<std::uint32_t>(v >> 32));
  };
  const std::string one = zip_of(
      {stored("w.npy", npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }") + f4_bytes({1}))});
  const std::string body = one.substr(0, one.size() - 22);  // the member and its directory entry
  const std::uint64_t cd_size = body.size() - body.find("PK\x01\x02"), cd_offset = body.find("PK\x01\x02");
  for (const std::uint64_t entries :
       {std::uint64_t{1}, std::uint64_t{65535}, std::uint64_t{1} << 40, ~std::uint64_t{0}}) {
    CAPTURE(entries);
    std::string z = body;
    const std::uint64_t z64_at = z.size();
    z += "PK\x06\x06";
    put64(z, 44);
    put16(z, 45);
    put16(z, 45);
    put32(z, 0);
    put32(z, 0);
    put64(z, entries);
    put64(z, entries);
    put64(z, cd_size);
    put64(z, cd_offset);
    z += "PK\x06\x07";
    put32(z, 0);
    put64(z, z64_at);
    put32(z, 1);
    z += "PK\x05\x06";
    put16(z, 0);
    put16(z, 0);
    put16(z, 0xffff);
    put16(z, 0xffff);
    put32(z, 0xffffffff);
    put32(z, 0xffffffff);
    put16(z, 0);
    write_bytes(file, z);
    if (entries == 1) {  // the control: the same zip64 records with the true count load
      CHECK(load_npz(file).at(0).second.to_vector() == std::vector<double>{1});
      continue;
    }
    std::string msg;
    const std::uint64_t grew = peak_growth([&] { msg = message_of<IOError>([&] { load_npz(file); }); });
    CHECK_CONTAINS(msg, "load_npz: \"" + file + "\"");
    CHECK_MESSAGE(grew < 16 * 1024 * 1024, "peak memory grew by " << grew << " bytes");
  }
}

TEST_CASE("hostile files: a hand-made archive's members, names and headers are refused by file and key") {
  TempDir dir("rewind-hostile-files");
  const std::string file = dir / "h.npz";
  const std::string where = "load_npz: \"" + file + "\"";
  const std::string ok = npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }") + f4_bytes({1, 2});
  struct Case {
    const char* what;
    std::string npy;
    const char* says;
  };
  const std::vector<Case> cases = {
      {"bad magic", "\x93NUMPX\x01\x00" + ok.substr(8), "magic"},
      {"version 4.0", std::string("\x93NUMPY\x04\x00", 8) + ok.substr(8), "version 4.0"},
      {"header length past the end", std::string("\x93NUMPY\x01\x00\xff\xff", 10) + ok.substr(10), "runs past the end"},
      {"non-ASCII header",
       npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), '\xc3\xa9': 1}") + f4_bytes({1, 2}),
       "bad .npy header"},
      {"unterminated dict", npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), ") + f4_bytes({1, 2}),
       "bad .npy header"},
      {"negative dimension",
       npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }") + f4_bytes({1, 2}),
       "non-negative integer"},
      {"a 10^15-element array",
       npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000000,), }") + f4_bytes({1, 2}),
       "limit"},
      {"dims whose product overflows",
       npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }") + f4_bytes({1, 2}),
       "too large"},
      {"a dimension past 2^64",
       npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }") + f4_bytes({1, 2}),
       "too large"},
      {"float16", npy_header("{'descr': '<f2', 'fortran_order': False, 'shape': (4,), }") + f4_bytes({1, 2}), "'<f2'"},
      {"big-endian", npy_header("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }") + f4_bytes({1, 2}),
       "big-endian"},
      {"Python objects", npy_header("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }") + f4_bytes({1, 2}),
       "'|O'"},
      {"unicode", npy_header("{'descr': '<U1', 'fortran_order': False, 'shape': (2,), }") + f4_bytes({1, 2}), "'<U1'"},
      {"data one byte short", ok.substr(0, ok.size() - 1), "truncated"},
      {"data one byte long", ok + "x", "needs 8"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    write_bytes(file, zip_of({stored("w.npy", c.npy)}));
    const std::string msg = message_of<IOError>([&] { load_npz(file); });
    CHECK_CONTAINS(msg, where + ": key \"w\"");
    CHECK_CONTAINS(msg, c.says);
    // decode_npy, the codec alone, refuses the same bytes, naming what it was given.
    CHECK_CONTAINS(message_of<IOError>([&] { decode_npy(c.npy, "probe"); }), "probe: ");
  }
  SUBCASE("archive-level damage") {
    write_bytes(file, zip_of({stored("w.npy", ok), stored("w.npy", ok)}));
    CHECK_CONTAINS(message_of<IOError>([&] { load_npz(file); }), "key \"w\": appears twice");
    write_bytes(file, zip_of({stored("w.txt", ok)}));
    CHECK_CONTAINS(message_of<IOError>([&] { load_npz(file); }), "member \"w.txt\" is not an .npy array");
    RawMember bad_crc = stored("w.npy", ok);
    bad_crc.crc ^= 1;
    write_bytes(file, zip_of({bad_crc}));
    CHECK_CONTAINS(message_of<IOError>([&] { load_npz(file); }), where);
    write_bytes(file, "this is not a zip archive, whatever its name says");
    CHECK_CONTAINS(message_of<IOError>([&] { load_npz(file); }), where + ": cannot open");
    write_bytes(file, "");
    CHECK_CONTAINS(message_of<IOError>([&] { load_npz(file); }), where);
  }
}

// ---------------------------------------------------------------------------------------------------
// writing: targets that are not plain writable files
// ---------------------------------------------------------------------------------------------------

TEST_CASE("hostile files: save_npz over a read-only file refuses and leaves it as it was") {
  // np.savez and torch.save open the target for writing, which a read-only file refuses; replacing it
  // by rename would go around its permissions. Refused by its mode bits, so root is refused too.
  TempDir dir("rewind-hostile-files");
  const std::string file = dir / "frozen.npz";
  save_npz(file, {{"w", Tensor::full({3}, 2.0)}});
  const std::string bytes = read_bytes(file);
  fs::permissions(file, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  const std::string msg = message_of<IOError>([&] { save_npz(file, {{"w", Tensor::full({3}, 5.0)}}); });
  CHECK_CONTAINS(msg, "save_npz: \"" + file + "\"");
  CHECK_CONTAINS(msg, "read-only");
  CHECK(read_bytes(file) == bytes);
  CHECK(dir.files() == std::set<std::string>{"frozen.npz"});
  // Also for the text writer (History::write_csv).
  CHECK_CONTAINS(message_of<IOError>([&] { write_file_atomic(file, "x"); }), "read-only");
  CHECK(read_bytes(file) == bytes);
}

TEST_CASE("hostile files: a save keeps the file's permissions, and a new file gets the umask's, not 0600") {
  TempDir dir("rewind-hostile-files");
  const std::string file = dir / "m.npz";
  const ::mode_t old_mask = ::umask(022);
  save_npz(file, {{"w", Tensor::ones({2})}});
  ::umask(old_mask);
  CHECK((fs::status(file).permissions() & fs::perms::all) ==
        (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read));
  const fs::perms chosen = fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read;
  fs::permissions(file, chosen);
  save_npz(file, {{"w", Tensor::zeros({2})}});
  CHECK((fs::status(file).permissions() & fs::perms::all) == chosen);
  write_file_atomic(file, "text");
  CHECK((fs::status(file).permissions() & fs::perms::all) == chosen);
}

TEST_CASE("hostile files: saving to a FIFO or through a symlink does not replace the special file or the link") {
  TempDir dir("rewind-hostile-files");
  SUBCASE("a FIFO (a device such as /dev/null is the same case: renaming over it would replace it)") {
    const std::string fifo = dir / "pipe.npz";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    const std::string msg = message_of<IOError>([&] { save_npz(fifo, {{"w", Tensor::ones({2})}}); });
    CHECK_CONTAINS(msg, "save_npz: \"" + fifo + "\"");
    CHECK_CONTAINS(msg, "not a regular file");
    CHECK(fs::is_fifo(fs::symlink_status(fifo)));
    CHECK(dir.files() == std::set<std::string>{"pipe.npz"});
  }
  SUBCASE("a symlink: the file it points to is replaced, the link stays") {
    fs::create_directories(dir.path() / "real");
    const std::string real = dir / "real/m.npz", link = dir / "link.npz";
    save_npz(real, {{"w", Tensor::ones({2})}});
    fs::create_symlink("real/m.npz", link);
    save_npz(link, {{"w", Tensor::full({2}, 7.0)}});
    CHECK(fs::is_symlink(fs::symlink_status(link)));
    CHECK(load_npz(real).at(0).second.to_vector() == std::vector<double>{7, 7});
    CHECK(dir.files() == std::set<std::string>{"link.npz", "real"});
  }
}

// ---------------------------------------------------------------------------------------------------
// state dicts: aliasing, keys, dtypes
// ---------------------------------------------------------------------------------------------------

TEST_CASE("hostile files: load_state_dict with the model's own tensors under swapped keys loads the swap") {
  // Every value is read before any is written: a state whose tensors are the model's own parameters
  // (a swap of two layers' weights) must not read a value the load has already overwritten.
  Generator gen(3);
  Chain model(Dense(3, 3, {}, true, float32, gen), Dense(3, 3, {}, true, float32, gen));
  const NamedTensors live = model.state_dict();  // 0.weight, 0.bias, 1.weight, 1.bias
  const std::vector<double> w0 = live[0].second.to_vector(), w1 = live[2].second.to_vector();
  REQUIRE(w0 != w1);
  model.load_state_dict({{"0.weight", live[2].second},
                         {"0.bias", live[1].second},
                         {"1.weight", live[0].second},
                         {"1.bias", live[3].second}});
  CHECK(model.state_dict()[0].second.to_vector() == w1);
  CHECK(model.state_dict()[2].second.to_vector() == w0);

  // Views of the other parameter's storage count the same: weight and bias swapped through reshapes.
  Dense a(1, 1, {}, true, float32, gen);
  const NamedTensors s = a.state_dict();  // weight (1, 1), bias (1,)
  Tensor(s[1].second).fill(0.75);
  const double w = s[0].second.item();
  a.load_state_dict({{"weight", reshape(s[1].second, {1, 1})}, {"bias", reshape(s[0].second, {1})}});
  CHECK(a.state_dict()[0].second.item() == 0.75);
  CHECK(a.state_dict()[1].second.item() == w);
}

TEST_CASE("hostile files: load_torch with the model's own tensors under swapped keys loads the swap") {
  Generator gen(4);
  Recurrent m = LSTM(3, 3, {.dtype = float64}, {.num_layers = 2});
  const NamedTensors keys = torch_keys(m);  // weight_ih_l0, weight_hh_l0, …, weight_ih_l1, …
  const std::vector<double> hh0 = keys[1].second.to_vector(), ih1 = keys[4].second.to_vector();
  NamedTensors swapped = keys;
  swapped[1].second = keys[4].second;  // weight_hh_l0 ← weight_ih_l1 (both (12, 3))
  swapped[4].second = keys[1].second;
  load_torch(m, swapped);
  CHECK(torch_keys(m)[1].second.to_vector() == ih1);
  CHECK(torch_keys(m)[4].second.to_vector() == hh0);
}

TEST_CASE("hostile files: load_state_dict and load keep the documented contract for keys and dtypes") {
  Generator gen(5);
  Chain model(Dense(2, 3, {}, true, float32, gen), Dense(3, 1, {}, true, float32, gen));
  const auto before = values_of(model);
  const NamedTensors sd = model.state_dict();
  auto with = [&](const std::string& key, Tensor t) {
    NamedTensors out;
    for (const auto& [k, v] : sd) out.emplace_back(k, k == key ? t : v.detach());
    return out;
  };
  // Right key, wrong shape: ShapeError naming the key and both shapes, strict or not.
  for (const bool strict : {true, false}) {
    const std::string msg = message_of<ShapeError>([&] {
      model.load_state_dict(with("1.weight", Tensor::zeros({3, 1})), strict);
    });
    CHECK_CONTAINS(msg, "'1.weight'");
    CHECK_CONTAINS(msg, "(1, 3)");
    CHECK_CONTAINS(msg, "(3, 1)");
  }
  // float64 into a float32 model: strict refuses (DtypeError naming the key); strict=false converts.
  CHECK_CONTAINS(message_of<DtypeError>([&] { model.load_state_dict(with("0.bias", Tensor::zeros({3}, float64))); }),
                 "'0.bias'");
  CHECK(values_of(model) == before);
  // Missing, extra, misnamed, odd keys.
  NamedTensors odd = with("x", Tensor());
  odd.emplace_back("../0.weight", Tensor::zeros({3, 2}));
  odd.emplace_back("", Tensor::zeros({1}));
  odd.emplace_back(std::string(5000, 'k'), Tensor::zeros({1}));
  const std::string msg = message_of<ValueError>([&] { model.load_state_dict(odd); });
  CHECK_CONTAINS(msg, "unexpected keys '../0.weight', ''");
  CHECK(values_of(model) == before);
  NamedTensors misnamed = model.state_dict();
  misnamed[0].first = "0.Weight";
  CHECK_CONTAINS(message_of<ValueError>([&] { model.load_state_dict(misnamed); }), "missing key '0.weight'");
  CHECK(values_of(model) == before);
  model.load_state_dict(with("0.bias", Tensor::from_vector({1.0, 2.0, 3.0}, {3}, float64)), /*strict=*/false);
  CHECK(model.state_dict()[1].second.dtype() == float32);
  CHECK(model.state_dict()[1].second.to_vector() == std::vector<double>{1, 2, 3});
}

// ---------------------------------------------------------------------------------------------------
// PyTorch imports: the keys PyTorch writes, for the wrong model
// ---------------------------------------------------------------------------------------------------

TEST_CASE("hostile files: load_torch from an .npz ignores integer arrays outside what it loads (num_batches_tracked)") {
  // A PyTorch state_dict often holds int64 entries (BatchNorm's num_batches_tracked, a step counter):
  // np.savez keeps them '<i8'. Keys outside the prefix, or ignored by TorchKeys::ignore_unexpected,
  // must not stop the load; exact mode names such a key as unexpected; a key the model needs that
  // holds integers is refused by name.
  TempDir dir("rewind-hostile-files");
  const std::string file = dir / "sd.npz";
  Dense head(2, 1, {}, true, float64);
  const std::string w = npy_header("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2), }");
  const std::string b = npy_header("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }");
  const std::string i8 = npy_header("{'descr': '<i8', 'fortran_order': False, 'shape': (), }");
  auto f8 = [](std::vector<double> v) { return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 8); };
  const std::string count(8, '\0');
  write_bytes(file, zip_of({stored("head.weight.npy", w + f8({0.25, -0.5})), stored("head.bias.npy", b + f8({3.0})),
                            stored("bn.num_batches_tracked.npy", i8 + count), stored("weight.npy", w + f8({9, 9})),
                            stored("bias.npy", b + f8({9})), stored("num_batches_tracked.npy", i8 + count)}));
  load_torch(head, file, "head.");
  CHECK(head.state_dict()[0].second.to_vector() == std::vector<double>{0.25, -0.5});
  CHECK(head.state_dict()[1].second.to_vector() == std::vector<double>{3.0});
  load_torch(head, file, "", TorchKeys::ignore_unexpected);
  CHECK(head.state_dict()[0].second.to_vector() == std::vector<double>{9, 9});
  const std::string exact = message_of<ValueError>([&] { load_torch(head, file, "", TorchKeys::exact); });
  CHECK_CONTAINS(exact, "unexpected key");
  CHECK_CONTAINS(exact, "'num_batches_tracked'");
  CHECK_CONTAINS(exact, file);
  // A parameter's key holding integers: an IOError naming the file and the key.
  write_bytes(file, zip_of({stored("weight.npy", i8 + count), stored("bias.npy", b + f8({1}))}));
  Dense scalar_head(1, 1, {}, true, float64);
  const std::string msg = message_of<IOError>([&] { load_torch(scalar_head, file); });
  CHECK_CONTAINS(msg, file);
  CHECK_CONTAINS(msg, "key \"weight\"");
  CHECK_CONTAINS(msg, "integer");
}

TEST_CASE("hostile files: load with strict=false skips an integer array the model does not take, names one it does") {
  // strict=false skips unexpected keys; an int64 step counter saved beside the weights is one of them.
  TempDir dir("rewind-hostile-files");
  const std::string file = dir / "m.npz";
  Dense model(2, 1, {}, true, float64);
  const std::string w = npy_header("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2), }");
  const std::string b = npy_header("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }");
  const std::string i8 = npy_header("{'descr': '<i8', 'fortran_order': False, 'shape': (), }");
  auto f8 = [](std::vector<double> v) { return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 8); };
  write_bytes(file, zip_of({stored("weight.npy", w + f8({0.5, 1.5})), stored("bias.npy", b + f8({2})),
                            stored("step.npy", i8 + std::string(8, '\0'))}));
  load(model, file, /*strict=*/false);
  CHECK(model.state_dict()[0].second.to_vector() == std::vector<double>{0.5, 1.5});
  CHECK(model.state_dict()[1].second.to_vector() == std::vector<double>{2});
  // strict: the extra key is refused, naming the file and the key.
  const std::string strict = message_of<Error>([&] { load(model, file); });
  CHECK_CONTAINS(strict, file);
  CHECK_CONTAINS(strict, "step");
  // A parameter's key holding integers is refused whether strict or not, by file and key.
  write_bytes(file, zip_of({stored("weight.npy", w + f8({0.5, 1.5})), stored("bias.npy", i8 + std::string(8, '\0'))}));
  const auto before = values_of(model);
  const std::string msg = message_of<IOError>([&] { load(model, file, false); });
  CHECK_CONTAINS(msg, file);
  CHECK_CONTAINS(msg, "bias");
  CHECK(values_of(model) == before);
}

TEST_CASE(
    "hostile files: PyTorch's LSTM keys for the wrong layer count, direction or hidden size are refused, nothing "
    "changes") {
  // The keys and shapes nn.LSTM(3, 4, num_layers, bidirectional) writes.
  auto torch_lstm = [](std::size_t input, std::size_t hidden, std::size_t layers, bool bidirectional) {
    NamedTensors sd;
    for (std::size_t l = 0; l < layers; ++l)
      for (const bool rev : {false, true}) {
        if (rev && !bidirectional) continue;
        const std::string s = "_l" + std::to_string(l) + (rev ? "_reverse" : "");
        const std::size_t in = l == 0 ? input : hidden * (bidirectional ? 2 : 1);
        sd.emplace_back("weight_ih" + s, Tensor::full({4 * hidden, in}, 0.5, float64));
        sd.emplace_back("weight_hh" + s, Tensor::full({4 * hidden, hidden}, 0.5, float64));
        sd.emplace_back("bias_ih" + s, Tensor::full({4 * hidden}, 0.5, float64));
        sd.emplace_back("bias_hh" + s, Tensor::full({4 * hidden}, 0.5, float64));
      }
    return sd;
  };
  Recurrent m = LSTM(3, 4, {.dtype = float64}, {.num_layers = 2, .bidirectional = true});
  const auto before = values_of(m);
  CHECK_CONTAINS(message_of<ValueError>([&] { load_torch(m, torch_lstm(3, 4, 1, true)); }),
                 "missing keys 'weight_ih_l1'");
  CHECK_CONTAINS(message_of<ValueError>([&] { load_torch(m, torch_lstm(3, 4, 3, true)); }),
                 "unexpected keys 'weight_ih_l2'");
  CHECK_CONTAINS(message_of<ValueError>([&] { load_torch(m, torch_lstm(3, 4, 2, false)); }), "'weight_ih_l0_reverse'");
  const std::string hidden = message_of<ShapeError>([&] { load_torch(m, torch_lstm(3, 5, 2, true)); });
  CHECK_CONTAINS(hidden, "key 'weight_ih_l0' is (20, 3) in the state_dict but layer0.cell.weight_ih is (16, 3)");
  CHECK(values_of(m) == before);
  load_torch(m, torch_lstm(3, 4, 2, true));
  for (const auto& v : values_of(m))
    for (const double x : v) REQUIRE(x == 0.5);
}

// ---------------------------------------------------------------------------------------------------
// optimizer state and training checkpoints
// ---------------------------------------------------------------------------------------------------

TEST_CASE("hostile files: an optimizer state saved for other parameters is refused whole, by key") {
  Generator gen(6);
  Dense small(2, 3, {}, true, float32, gen), big(4, 3, {}, true, float32, gen);
  Adam a(small.parameters()), b(big.parameters());
  for (Adam* opt : {&a, &b}) {
    for (Tensor p : opt->params()) p.set_grad(Tensor::ones(p.shape()));
    opt->step();
  }
  const StateDict saved_b = b.state_dict();
  const std::string msg = message_of<ShapeError>([&] { a.load_state_dict(b.state_dict()); });
  CHECK_CONTAINS(msg, "Adam.load_state_dict");
  CHECK_CONTAINS(msg, "'0.exp_avg'");
  CHECK_CONTAINS(msg, "(3, 4)");
  CHECK_CONTAINS(msg, "(3, 2)");
  CHECK(a.step_count() == 1);
  // Another optimizer's state: its slots are unexpected keys.
  SGD sgd(small.parameters(), {.lr = 0.1, .momentum = 0.9});
  CHECK_CONTAINS(message_of<ValueError>([&] { sgd.load_state_dict(a.state_dict()); }),
                 "SGD.load_state_dict: unexpected key '0.");
  // A step that is not a count, an lr that is not a rate.
  StateDict bad = a.state_dict();
  bad[0].second = Tensor::scalar(1.5, float64);
  CHECK_CONTAINS(message_of<ValueError>([&] { a.load_state_dict(bad); }), "'step' is 1.5");
  bad = a.state_dict();
  bad[1].second = Tensor::scalar(NAN, float64);
  CHECK_CONTAINS(message_of<ValueError>([&] { a.load_state_dict(bad); }), "'lr' is nan");
}

TEST_CASE("hostile files: a training checkpoint cut at every byte is an IOError, the model and optimizer untouched") {
  TempDir dir("rewind-hostile-files");
  Generator gen(7);
  Dense model(2, 1, {}, true, float32, gen);
  Adam opt(model.parameters(), {.lr = 0.01});
  for (Tensor p : opt.params()) p.set_grad(Tensor::ones(p.shape()));
  opt.step();
  const std::string file = dir / "ckpt.npz";
  save_checkpoint(file, model, opt);
  const std::string bytes = read_bytes(file);
  // Moved away from the saved state, so a partial load would show.
  for (Tensor p : opt.params()) p.fill(-3);
  for (Tensor p : opt.params()) p.set_grad(Tensor::ones(p.shape()));
  opt.step();
  const auto model_before = values_of(model);
  const std::int64_t steps_before = opt.step_count();
  const std::string cut = dir / "cut.npz";
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    write_bytes(cut, bytes.substr(0, n));
    try {
      load_checkpoint(cut, model, opt);
      FAIL_CHECK("a checkpoint cut to " << n << " of " << bytes.size() << " bytes loaded");
    } catch (const IOError& e) {
      if (!contains(e.what(), cut)) FAIL_CHECK("cut to " << n << ": the message does not name the file: " << e.what());
    } catch (const std::exception& e) {
      FAIL_CHECK("cut to " << n << ": " << e.what());
    }
  }
  CHECK(values_of(model) == model_before);
  CHECK(opt.step_count() == steps_before);
  load_checkpoint(file, model, opt);
  CHECK(opt.step_count() == 1);
}

TEST_CASE("hostile files: resuming a checkpoint with a different model or optimizer changes neither") {
  TempDir dir("rewind-hostile-files");
  Generator gen(8);
  Dense model(2, 3, {}, true, float32, gen);
  Adam opt(model.parameters());
  const std::string file = dir / "ckpt.npz";
  save_checkpoint(file, model, opt);

  Dense wider(2, 4, {}, true, float32, gen);
  Adam wider_opt(wider.parameters());
  const auto before = values_of(wider);
  const std::string msg = message_of<ShapeError>([&] { load_checkpoint(file, wider, wider_opt); });
  CHECK_CONTAINS(msg, file);
  CHECK_CONTAINS(msg, "'weight'");
  CHECK(values_of(wider) == before);

  // The model part fits, the optimizer's does not (another optimizer): the model is put back.
  for (Tensor p : opt.params()) p.set_grad(Tensor::ones(p.shape()));
  opt.step();
  save_checkpoint(file, model, opt);
  Dense same(2, 3, {}, true, float32, gen);
  SGD sgd(same.parameters(), {.lr = 0.1, .momentum = 0.9});
  const auto same_before = values_of(same);
  CHECK_CONTAINS(message_of<ValueError>([&] { load_checkpoint(file, same, sgd); }), "optimizer part");
  CHECK(values_of(same) == same_before);

  // Not a checkpoint: a plain model file.
  save(model, file);
  CHECK_CONTAINS(message_of<IOError>([&] { load_checkpoint(file, same, sgd); }), "not a rewind checkpoint");
}

TEST_CASE(
    "hostile files: NaN, infinities and -0 in a checkpoint come back bit for bit (loaded as saved, never altered)") {
  // The documented contract converts nothing in a checkpoint: what was saved is what loads, non-finite
  // values included (fit() then stops at the first non-finite loss, naming the epoch and batch).
  TempDir dir("rewind-hostile-files");
  Dense model(3, 1, {}, true, float32);
  Adam opt(model.parameters());
  for (Tensor p : opt.params()) p.set_grad(Tensor::ones(p.shape()));
  opt.step();
  Tensor w = model.state_dict()[0].second;
  w.data<float>()[0] = NAN;
  w.data<float>()[1] = -INFINITY;
  w.data<float>()[2] = -0.0f;
  const std::string file = dir / "nan.npz";
  save_checkpoint(file, model, opt);
  Dense other(3, 1, {}, true, float32);
  Adam other_opt(other.parameters());
  load_checkpoint(file, other, other_opt);
  const float* got = other.state_dict()[0].second.data<float>();
  CHECK(std::isnan(got[0]));
  CHECK(got[1] == -INFINITY);
  CHECK((got[2] == 0.0f && std::signbit(got[2])));
  CHECK(other_opt.step_count() == 1);
}

TEST_CASE("hostile files: fit refuses restore_best without a monitored figure (nothing would be restored)") {
  // Keras' restore_best_weights belongs to EarlyStopping's monitor; with none, no epoch is ever "best"
  // and the request would be dropped without a word.
  Tensor w = Tensor::scalar(1.0, float64).set_requires_grad();
  SGD opt({w}, {.lr = 0.25});
  auto loss = [&](std::size_t, std::size_t) { return w * w; };
  const std::string msg =
      message_of<ValueError>([&] { fit(opt, 1, loss, {.epochs = 2, .early_stopping = {.monitor = {}, .restore_best = true}}); });
  CHECK_CONTAINS(msg, "fit: early_stopping.restore_best");
  CHECK(w.item() == 1.0);  // refused before anything ran
  // With a monitor, the best epoch's parameters come back (the loss falls every epoch: the last is best).
  History h = fit(opt, 1, loss, {.epochs = 2, .early_stopping = {.monitor = "loss", .restore_best = true}});
  CHECK(h.best_epoch == 2);
  CHECK(w.item() == 0.25);
}

TEST_CASE(
    "hostile files: a checkpoint with any one byte flipped loads exactly as saved or is an IOError, never other "
    "numbers") {
  // Every byte of the data and of the .npy headers is under a CRC; the zip fields that are not (times,
  // attributes) change nothing that loads. So a flip anywhere either fails by name or changes nothing.
  TempDir dir("rewind-hostile-files");
  Generator gen(9);
  Dense model(2, 1, {}, true, float32, gen);
  Adam opt(model.parameters(), {.lr = 0.01});
  for (Tensor p : opt.params()) p.set_grad(Tensor::ones(p.shape()));
  opt.step();
  const std::string file = dir / "ckpt.npz", flipped = dir / "flipped.npz";
  save_checkpoint(file, model, opt);
  const std::string bytes = read_bytes(file);
  const auto saved_model = values_of(model);
  std::vector<std::vector<double>> saved_optim;
  for (const auto& [k, t] : opt.state_dict()) saved_optim.push_back(t.to_vector());
  std::size_t loaded = 0;
  for (std::size_t at = 0; at < bytes.size(); ++at) {
    std::string damaged = bytes;
    damaged[at] = static_cast<char>(damaged[at] ^ 0x5a);
    write_bytes(flipped, damaged);
    Dense other(2, 1, {}, true, float32);
    Adam other_opt(other.parameters());
    try {
      load_checkpoint(flipped, other, other_opt);
    } catch (const IOError& e) {
      if (!contains(e.what(), flipped))
        FAIL_CHECK("byte " << at << ": the message does not name the file: " << e.what());
      continue;
    } catch (const std::exception& e) {
      FAIL_CHECK("byte " << at << ": not an IOError: " << e.what());
      continue;
    }
    ++loaded;
    std::vector<std::vector<double>> got_optim;
    for (const auto& [k, t] : other_opt.state_dict()) got_optim.push_back(t.to_vector());
    if (values_of(other) != saved_model || got_optim != saved_optim)
      FAIL_CHECK("byte " << at << ": loaded other numbers");
  }
  CHECK(loaded > 0);  // some flips fall on fields that change nothing (160 of 2470 when written)
}
