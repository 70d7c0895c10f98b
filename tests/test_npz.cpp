// .npz files: rewind's own round trip, files written by NumPy (tests/data, made by make_npz_refs.py),
// the error for every kind of bad file, and the atomicity of save_npz.
#include <doctest/doctest.h>

#include "support.hpp"

#include <rewind.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <set>
#include <string>
#include <vector>

using namespace rwd;
namespace fs = std::filesystem;

namespace {

const fs::path data_dir = REWIND_TEST_DATA_DIR;

/// A fresh directory under the system's temp directory, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    static std::atomic<unsigned> counter{0};
    std::random_device rd;
    m_path = fs::temp_directory_path() / ("rewind-npz-" + std::to_string(::getpid()) + "-" +
                                          std::to_string(counter++) + "-" + std::to_string(rd()));
    fs::create_directories(m_path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(m_path, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(m_path, ec);
  }
  std::string operator/(const std::string& name) const { return (m_path / name).string(); }
  const fs::path& path() const { return m_path; }
  /// The names of the files in the directory.
  std::set<std::string> files() const {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(m_path)) names.insert(e.path().filename().string());
    return names;
  }

 private:
  fs::path m_path;
};

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE_MESSAGE(in, "cannot read " << p);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE_MESSAGE(out, "cannot write " << p);
}

#define CHECK_CONTAINS(text, part) CHECK_MESSAGE(contains(text, part), "\"" << (text) << "\" lacks \"" << (part) << "\"")

/// Same keys in order, dtypes, shapes and bit-identical values (so -0.0, inf and NaN count).
void check_same(const NamedTensors& got, const NamedTensors& want) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    CAPTURE(want[i].first);
    CHECK(got[i].first == want[i].first);
    CHECK(got[i].second.name() == want[i].first);
    REQUIRE(got[i].second.dtype() == want[i].second.dtype());
    REQUIRE(got[i].second.shape() == want[i].second.shape());
    const std::size_t n = want[i].second.numel() * dtype_size(want[i].second.dtype());
    if (n == 0) continue;
    const void* a = got[i].second.dtype() == float32 ? static_cast<const void*>(got[i].second.data<float>())
                                                     : static_cast<const void*>(got[i].second.data<double>());
    const void* b = want[i].second.dtype() == float32 ? static_cast<const void*>(want[i].second.data<float>())
                                                      : static_cast<const void*>(want[i].second.data<double>());
    CHECK(std::memcmp(a, b, n) == 0);
  }
}

/// The arrays of make_npz_refs.py (and check_numpy_reads.py), written out again here.
NamedTensors reference_arrays() {
  std::vector<double> enc(24);
  for (int i = 0; i < 24; ++i) enc[i] = i / 8.0 - 1;
  return {
      {"0.weight", Tensor::from_vector(std::vector<float>{0.1f, -2.5f, 3e-8f, 1e30f, -0.0f, 7.0f}, {2, 3}, float32)},
      {"0.bias", Tensor::from_vector(std::vector<float>{0.5f, -1.25f, INFINITY}, {3}, float32)},
      {"scalar", Tensor::scalar(3.141592653589793, float64)},
      {"encoder.bias", Tensor::from_vector(enc, {2, 3, 1, 4}, float64)},
      {"empty", Tensor::zeros({0, 3}, float32)},
  };
}

}  // namespace

TEST_CASE("npz: round trip rewind → rewind, float32 and float64, 0-d to 4-d, zero-size, dotted keys") {
  TempDir dir;
  const std::string file = dir / "model.npz";
  Generator gen(7);
  for (const Dtype dtype : {float32, float64}) {
    CAPTURE(dtype_name(dtype));
    const NamedTensors tensors = {
        {"0.weight", Tensor::randn({4, 3}, gen, dtype)},
        {"0.bias", Tensor::randn({3}, gen, dtype)},
        {"encoder.bias", Tensor::randn({2, 3, 4, 5}, gen, dtype)},
        {"step", Tensor::scalar(-0.0, dtype)},
        {"empty", Tensor::zeros({3, 0, 2}, dtype)},
        {"empty1d", Tensor::zeros({0}, dtype)},
        {"nan", Tensor::from_vector(std::vector<double>{NAN, -INFINITY, 1e-300}, {3}, dtype)},
        {"a/b c.npy", Tensor::ones({1, 1, 1, 1, 1, 1, 1, 2}, dtype)},  // slashes, spaces, 8-d
    };
    save_npz(file, tensors);
    check_same(load_npz(file), tensors);
    CHECK(dir.files() == std::set<std::string>{"model.npz"});  // no temporary left behind
  }
  SUBCASE("a mixed file, saved over an existing one") {
    const NamedTensors mixed = {{"w", Tensor::full({2, 2}, 1.5, float32)}, {"v", Tensor::arange(5, float64)}};
    save_npz(file, mixed);
    check_same(load_npz(file), mixed);
  }
  SUBCASE("no tensors at all (like np.savez() with no arrays)") {
    save_npz(file, {});
    CHECK(load_npz(file).empty());
  }
  SUBCASE("a bigger tensor (a 2-MB member)") {
    const NamedTensors big = {{"big", Tensor::randn({512, 1024}, gen, float32)}};
    save_npz(file, big);
    check_same(load_npz(file), big);
  }
}

TEST_CASE("npz: encode_npy writes exactly np.save's bytes — decode_npy reads them") {
  std::vector<double> enc(24);
  for (int i = 0; i < 24; ++i) enc[i] = i / 8.0 - 1;
  struct Case {
    const char* file;
    Tensor tensor;
  };
  const Case cases[] = {
      {"npy_2x3_f32.npy", Tensor::from_vector(std::vector<float>{0.1f, -2.5f, 3e-8f, 1e30f, -0.0f, 7.0f}, {2, 3})},
      {"npy_0d_f64.npy", Tensor::scalar(3.141592653589793, float64)},
      {"npy_0x3_f32.npy", Tensor::zeros({0, 3}, float32)},
      {"npy_4d_f64.npy", Tensor::from_vector(enc, {2, 3, 1, 4}, float64)},
      {"npy_123456789x0_f32.npy", Tensor::zeros({123456789, 0}, float32)},
  };
  for (const Case& c : cases) {
    CAPTURE(c.file);
    const std::string numpy_bytes = read_bytes(data_dir / c.file);
    CHECK(encode_npy(c.tensor) == numpy_bytes);
    check_same({{"x", decode_npy(numpy_bytes, c.file).set_name("x")}}, {{"x", c.tensor}});
  }
}

TEST_CASE("npz: reads np.savez and np.savez_compressed files, Fortran order included") {
  NamedTensors want = reference_arrays();
  std::vector<double> f2(12);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) f2[4 * i + j] = 1.5 * (4 * i + j) - 2;  // element [i, j], C order
  want.emplace_back("fortran2d", Tensor::from_vector(f2, {3, 4}, float64));
  std::vector<double> f3(24);
  for (int i = 0; i < 24; ++i) f3[i] = i;  // element [i, j, k] = 12 i + 4 j + k, C order
  want.emplace_back("fortran3d", Tensor::from_vector(f3, {2, 3, 4}, float32));

  for (const char* file : {"npz_savez.npz", "npz_savez_compressed.npz"}) {
    CAPTURE(file);
    const NamedTensors got = load_npz((data_dir / file).string());
    check_same(got, want);
    // Spot checks spelled out, independent of the helper.
    REQUIRE(got.size() == 7);
    CHECK(got[0].second.at({0, 0}) == doctest::Approx(0.1).epsilon(1e-7));
    CHECK(got[1].second.at({2}) == INFINITY);
    CHECK(got[2].second.ndim() == 0);
    CHECK(got[2].second.item() == 3.141592653589793);
    CHECK(got[3].second.at({1, 2, 0, 3}) == (12 + 8 + 3) / 8.0 - 1);
    CHECK(got[4].second.shape() == Shape{0, 3});
    CHECK(got[5].second.at({2, 1}) == 1.5 * 9 - 2);
    CHECK(got[6].second.at({1, 2, 3}) == 23);
    CHECK(got[6].second.at({0, 1, 2}) == 6);
  }
}

TEST_CASE("npz: decode_npy rejects malformed arrays, naming them and what is wrong") {
  // Magic, version 1.0 and a header padded like NumPy's, then `data`.
  auto npy = [](const std::string& header, const std::string& data = "") {
    std::string h = header;
    const std::size_t hlen = h.size() + 1;
    h.append(64 - (10 + hlen) % 64, ' ');
    h += '\n';
    std::string out("\x93NUMPY\x01\x00", 8);
    out += static_cast<char>(h.size() & 0xff);
    out += static_cast<char>(h.size() >> 8);
    return out + h + data;
  };
  auto f4 = [&](const std::string& shape) { return "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }"; };
  const std::string eight(8, '\0');
  struct Case {
    const char* why;
    std::string bytes;
    const char* message;
  };
  const Case cases[] = {
      {"empty", "", "not an .npy array"},
      {"bad magic", "\x93NUMPZ\x01\x00" + eight, "not an .npy array"},
      {"version 4.0", std::string("\x93NUMPY\x04\x00", 8) + eight, "unsupported .npy format version 4.0"},
      {"length only half there", std::string("\x93NUMPY\x02\x00\x10\x00", 10), "truncated inside its header length"},
      {"header length past the end", std::string("\x93NUMPY\x01\x00\xff\x00{}", 12), "runs past the end"},
      {"not a dict", npy("['<f4', False, (2,)]"), "expected '{'"},
      {"no shape", npy("{'descr': '<f4', 'fortran_order': False, }"), "no 'shape' key"},
      {"unknown key", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (), 'x': 1}"), "unexpected key 'x'"},
      {"key twice", npy("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': ()}"), "appears twice"},
      {"shape a list", npy(f4("[2, 3]")), "shape must be a tuple"},
      {"(5) is not a tuple", npy(f4("(5)")), "needs a trailing comma"},
      {"negative dimension", npy(f4("(-1,)")), "non-negative integer"},
      {"fortran_order 1", npy("{'descr': '<f4', 'fortran_order': 1, 'shape': ()}"), "True or False"},
      {"text after the dict", npy(f4("()") + " x"), "text after the closing"},
      {"unterminated", npy("{'descr': '<f4"), "unterminated string"},
      {"structured", npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': ()}"), "structured array"},
      {"int64", npy("{'descr': '<i8', 'fortran_order': False, 'shape': ()}", eight), "unsupported dtype '<i8'"},
      {"big-endian", npy("{'descr': '>f4', 'fortran_order': False, 'shape': ()}", "\0\0\0\0"), "(big-endian)"},
      {"float16", npy("{'descr': '<f2', 'fortran_order': False, 'shape': ()}", "\0\0"), "unsupported dtype '<f2'"},
      {"9 dimensions", npy(f4("(1, 1, 1, 1, 1, 1, 1, 1, 1)")), "9 dimensions; rewind tensors have at most 8"},
      {"data too short", npy(f4("(2, 3)"), std::string(20, '\0')), "data is 20 bytes, but shape (2, 3) of float32 needs 24 (truncated)"},
      {"data too long", npy(f4("(2,)"), std::string(12, '\0')), "data is 12 bytes, but shape (2,) of float32 needs 8"},
      {"no data for a scalar", npy(f4("()")), "data is 0 bytes, but shape () of float32 needs 4"},
      {"shape overflows", npy(f4("(4294967296, 4294967296)")), "too large to address"},
      {"shape entry overflows", npy(f4("(99999999999999999999999,)")), "shape entry too large"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.why);
    const std::string msg = message_of<IOError>([&] { decode_npy(c.bytes, "\"w.npz\", key \"k\""); });
    CHECK(msg.rfind("\"w.npz\", key \"k\": ", 0) == 0);
    CHECK_CONTAINS(msg, c.message);
  }
  // The Python 2 spelling (3L,) and NPY version 2.0 (4-byte length) are read.
  const std::string v1 = npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1L,)}", std::string(8, '\0'));
  CHECK(decode_npy(v1, "v1").shape() == Shape{1});
  std::string v2 = std::string("\x93NUMPY\x02\x00", 8) + v1.substr(8, 2) + std::string(2, '\0') + v1.substr(10);
  CHECK(decode_npy(v2, "v2").shape() == Shape{1});
}

TEST_CASE("npz: load_npz names the file and the key of a bad member") {
  struct Case {
    const char* file;
    const char* key;  // the key the message names, or nullptr if the member is not <key>.npy
    const char* message;
  };
  const Case cases[] = {
      {"bad_not_npy.npz", nullptr, "member \"notes.txt\" is not an .npy array"},
      {"bad_magic.npz", "w", "not an .npy array"},
      {"bad_header.npz", "w", "bad .npy header (no 'shape' key"},
      {"bad_size.npz", "w", "data is 20 bytes, but shape (2, 3) of float32 needs 24"},
      {"bad_big_endian.npz", "w", "unsupported dtype '>f8' (big-endian)"},
      {"bad_int64.npz", "steps", "unsupported dtype '<i8'; rewind reads only float32 '<f4' and float64 '<f8'"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.file);
    const std::string path = (data_dir / c.file).string();
    const std::string msg = message_of<IOError>([&] { load_npz(path); });
    CHECK_CONTAINS(msg, "load_npz: \"" + path + "\"");
    if (c.key) CHECK_CONTAINS(msg, std::string("key \"") + c.key + "\": ");
    CHECK_CONTAINS(msg, c.message);
  }
}

TEST_CASE("npz: truncated, garbage, corrupt and missing files are clear IOErrors") {
  TempDir dir;
  const std::string file = dir / "model.npz";
  Generator gen(3);
  save_npz(file, {{"0.weight", Tensor::randn({16, 8}, gen)}, {"0.bias", Tensor::randn({8}, gen)}});
  const std::string good = read_bytes(file);
  const std::string where = "load_npz: \"" + file + "\"";

  SUBCASE("truncated to half") {
    write_bytes(file, good.substr(0, good.size() / 2));
    const std::string msg = message_of<IOError>([&] { load_npz(file); });
    CHECK_CONTAINS(msg, where);
    CHECK_CONTAINS(msg, "Not a zip archive");
  }
  SUBCASE("truncated by its last byte") {
    write_bytes(file, good.substr(0, good.size() - 1));
    CHECK_CONTAINS(message_of<IOError>([&] { load_npz(file); }), where);
  }
  SUBCASE("garbage") {
    write_bytes(file, "this is not a zip archive, and not an npz file either\n");
    const std::string msg = message_of<IOError>([&] { load_npz(file); });
    CHECK_CONTAINS(msg, where);
    CHECK_CONTAINS(msg, "Not a zip archive");
  }
  SUBCASE("an empty file") {
    write_bytes(file, "");
    CHECK_CONTAINS(message_of<IOError>([&] { load_npz(file); }), where);
  }
  SUBCASE("bytes flipped inside a stored member's data: a CRC error naming the key") {
    // The second member (0.bias, 8 float32 values) is stored: its data follows its magic and its
    // 128-byte .npy header. Flip bits in the middle of it; the zip structure stays intact.
    const std::size_t first = good.find("\x93NUMPY");
    const std::size_t second = good.find("\x93NUMPY", first + 1);
    REQUIRE(second != std::string::npos);
    std::string bad = good;
    bad[second + 128 + 5] ^= 0x5a;
    bad[second + 128 + 6] ^= 0x01;
    write_bytes(file, bad);
    const std::string msg = message_of<IOError>([&] { load_npz(file); });
    CHECK_CONTAINS(msg, where + ": key \"0.bias\": ");
    CHECK_CONTAINS(msg, "CRC error");
  }
  SUBCASE("a flipped byte inside a deflated member (np.savez_compressed)") {
    std::string bad = read_bytes(data_dir / "npz_savez_compressed.npz");
    // The first local file header: name length at 26, extra length at 28, then name, extra, data.
    REQUIRE(bad.compare(0, 4, "PK\x03\x04") == 0);
    auto u16 = [&](std::size_t at) { return std::size_t(std::uint8_t(bad[at])) | std::size_t(std::uint8_t(bad[at + 1])) << 8; };
    auto u32 = [&](std::size_t at) { return u16(at) | u16(at + 2) << 16; };
    const std::size_t data = 30 + u16(26) + u16(28);
    const std::size_t comp_size = u32(18);
    REQUIRE(comp_size > 8);
    bad[data + comp_size / 2] ^= 0x20;
    write_bytes(file, bad);
    const std::string msg = message_of<IOError>([&] { load_npz(file); });
    CHECK_CONTAINS(msg, where + ": key \"0.weight\": cannot read the member");
  }
  SUBCASE("a missing file") {
    const std::string missing = dir / "nope.npz";
    CHECK(message_of<IOError>([&] { load_npz(missing); }) == "load_npz: \"" + missing + "\": no such file");
  }
  SUBCASE("a directory") {
    CHECK_CONTAINS(message_of<IOError>([&] { load_npz(dir.path().string()); }), "is a directory");
  }
}

TEST_CASE("npz: save_npz is atomic — a failed save leaves the old file as it was and no temporary") {
  TempDir dir;
  const std::string file = dir / "model.npz";
  const NamedTensors old_tensors = {{"w", Tensor::full({3}, 2.0, float64)}};
  save_npz(file, old_tensors);
  const std::string old_bytes = read_bytes(file);
  Generator gen(5);
  const NamedTensors new_tensors = {{"w", Tensor::randn({256, 256}, gen, float64)}};  // 512 KB
  auto check_old_intact = [&] {
    CHECK(read_bytes(file) == old_bytes);
    check_same(load_npz(file), old_tensors);
    CHECK(dir.files() == std::set<std::string>{"model.npz"});
  };

  SUBCASE("the disk fills up mid-write (RLIMIT_FSIZE: works as root too)") {
    // Writes past 64 KB fail with EFBIG (SIGXFSZ ignored) while the limit is set.
    struct rlimit saved;
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
    auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = saved;
    small.rlim_cur = 64 * 1024;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
    std::string msg;
    try {
      save_npz(file, new_tensors);
    } catch (const IOError& e) {
      msg = e.what();
    }
    ::setrlimit(RLIMIT_FSIZE, &saved);
    std::signal(SIGXFSZ, old_handler);
    CHECK_CONTAINS(msg, "save_npz: \"" + file + "\": ");
    check_old_intact();
  }
  SUBCASE("an unwritable directory") {
    fs::permissions(dir.path(), fs::perms::owner_read | fs::perms::owner_exec);
    // Root ignores directory permissions: then this subcase has nothing to test (RLIMIT_FSIZE above
    // covers a failure after the temporary exists).
    const bool denied = ::access(dir.path().c_str(), W_OK) != 0;
    if (denied) {
      const std::string msg = message_of<IOError>([&] { save_npz(file, new_tensors); });
      CHECK_CONTAINS(msg, "save_npz: \"" + file + "\": ");
    } else {
      MESSAGE("running as root: directory permissions do not deny writes, unwritable-directory check skipped");
    }
    fs::permissions(dir.path(), fs::perms::owner_all, fs::perm_options::add);
    check_old_intact();
  }
  SUBCASE("the target is a directory: the rename fails after the temporary is complete") {
    const std::string sub = dir / "sub.npz";
    fs::create_directories(fs::path(sub) / "inside");
    CHECK_CONTAINS(message_of<IOError>([&] { save_npz(sub, new_tensors); }), "cannot replace the file");
    CHECK(fs::is_directory(fs::path(sub) / "inside"));
    fs::remove_all(sub);
    check_old_intact();
  }
  SUBCASE("a missing directory") {
    const std::string msg = message_of<IOError>([&] { save_npz(dir / "no/such/dir/model.npz", new_tensors); });
    CHECK_CONTAINS(msg, "does not exist");
    check_old_intact();
  }
  SUBCASE("bad arguments are ValueErrors, raised before any file is touched") {
    CHECK_CONTAINS(message_of<ValueError>([&] { save_npz(file, {{"w", Tensor()}}); }), "key \"w\": the tensor is undefined");
    CHECK_CONTAINS(message_of<ValueError>([&] { save_npz(file, {{"w", Tensor::ones({2})}, {"w", Tensor::ones({2})}}); }),
                   "key \"w\" appears twice");
    CHECK_CONTAINS(message_of<ValueError>([&] { save_npz(file, {{"", Tensor::ones({2})}}); }), "empty key");
    CHECK_CONTAINS(message_of<ValueError>([&] { save_npz(file, {{std::string("a\0b", 3), Tensor::ones({2})}}); }),
                   "contains '\\0'");
    check_old_intact();
  }
}

TEST_CASE("npz: a file for NumPy (set REWIND_NPZ_EXPORT=path, then run tests/data/check_numpy_reads.py path)") {
  // The arrays check_numpy_reads.py expects. Without the variable, the file goes to a temporary
  // directory and is only read back here.
  TempDir dir;
  const char* env = std::getenv("REWIND_NPZ_EXPORT");
  const std::string file = env && *env ? std::string(env) : dir / "for_numpy.npz";
  const NamedTensors tensors = reference_arrays();
  save_npz(file, tensors);
  check_same(load_npz(file), tensors);
  if (env && *env) MESSAGE("wrote " << file << " for tests/data/check_numpy_reads.py");
}
