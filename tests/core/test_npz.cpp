// .npz files: rewind's own round trip, files written by NumPy (tests/data, made by make_npz_refs.py),
// the error for every kind of bad file, and the atomicity of save_npz.
#include <doctest/doctest.h>

#include "../support.hpp"

#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "core/memory.hpp"
#include "core/npz.hpp"
#include "core/random.hpp"
#include "core/shape.hpp"
#include "core/tensor.hpp"
#include "core/threads.hpp"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zip.h>

#include "core/atomic_file.hpp"

#include <atomic>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

using namespace rwd;
namespace fs = std::filesystem;

namespace {

const fs::path data_dir = REWIND_TEST_DATA_DIR;

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

/// One member of a zip archive written by write_zip: `head` followed by `zeros` zero bytes, which are
/// generated as libzip reads them (so a 64-MiB member costs no memory to write).
struct ZipMember {
  std::string name;
  std::string head;
  std::uint64_t zeros = 0;
  bool deflate = false;
};

/// libzip source callback for a ZipMember.
struct ZipMemberSource {
  const ZipMember* m;
  std::uint64_t pos = 0;
  zip_error_t error;
  static zip_int64_t call(void* self_, void* data, zip_uint64_t len, zip_source_cmd_t cmd) {
    auto* self = static_cast<ZipMemberSource*>(self_);
    const std::uint64_t total = self->m->head.size() + self->m->zeros;
    switch (cmd) {
      case ZIP_SOURCE_OPEN: self->pos = 0; return 0;
      case ZIP_SOURCE_READ: {
        const std::uint64_t n = std::min<std::uint64_t>(len, total - self->pos);
        auto* out = static_cast<char*>(data);
        for (std::uint64_t i = 0; i < n; ++i, ++self->pos)
          out[i] = self->pos < self->m->head.size() ? self->m->head[self->pos] : '\0';
        return static_cast<zip_int64_t>(n);
      }
      case ZIP_SOURCE_CLOSE: return 0;
      case ZIP_SOURCE_STAT: {
        auto* st = static_cast<zip_stat_t*>(data);
        zip_stat_init(st);
        st->size = total;
        st->mtime = 0;
        st->valid |= ZIP_STAT_SIZE | ZIP_STAT_MTIME;
        return sizeof(zip_stat_t);
      }
      case ZIP_SOURCE_ERROR: return zip_error_to_data(&self->error, data, len);
      case ZIP_SOURCE_FREE: return 0;
      case ZIP_SOURCE_SUPPORTS:
        return zip_source_make_command_bitmap(ZIP_SOURCE_OPEN, ZIP_SOURCE_READ, ZIP_SOURCE_CLOSE, ZIP_SOURCE_STAT,
                                              ZIP_SOURCE_ERROR, ZIP_SOURCE_FREE, -1);
      default: zip_error_set(&self->error, ZIP_ER_OPNOTSUPP, 0); return -1;
    }
  }
};

/// Writes `members` to a new zip archive at `path` with libzip (stored or deflated).
void write_zip(const fs::path& path, const std::vector<ZipMember>& members) {
  fs::remove(path);
  int code = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_CREATE | ZIP_EXCL, &code);
  REQUIRE(z);
  std::vector<ZipMemberSource> sources(members.size());
  for (std::size_t i = 0; i < members.size(); ++i) {
    sources[i].m = &members[i];
    zip_error_init(&sources[i].error);
    zip_source_t* src = zip_source_function(z, &ZipMemberSource::call, &sources[i]);
    REQUIRE(src);
    const zip_int64_t idx = zip_file_add(z, members[i].name.c_str(), src, ZIP_FL_ENC_UTF_8);
    REQUIRE(idx >= 0);
    REQUIRE(zip_set_file_compression(z, idx, members[i].deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0) == 0);
  }
  REQUIRE(zip_close(z) == 0);
  for (auto& s : sources) zip_error_fini(&s.error);
}

/// An .npy header (magic, v1.0, padded dict) for float32 of the given shape, as np.save writes it.
std::string npy_f4_header(const std::string& shape) {
  std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
  h.append(64 - (10 + h.size() + 1) % 64, ' ');
  h += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(h.size() & 0xff);
  out += static_cast<char>(h.size() >> 8);
  return out + h;
}

/// Offsets of every local ("PK\\3\\4") or central ("PK\\1\\2") header in `zip`.
std::vector<std::size_t> headers_of(const std::string& zip, const char* signature) {
  std::vector<std::size_t> at;
  for (std::size_t i = zip.find(signature, 0, 4); i != std::string::npos; i = zip.find(signature, i + 1, 4)) at.push_back(i);
  return at;
}

void put_u32(std::string& s, std::size_t at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

constexpr std::uint64_t MiB = 1 << 20;

}  // namespace

TEST_CASE("npz: round trip rewind → rewind, float32 and float64, 0-d to 4-d, zero-size, dotted keys") {
  TempDir dir("rewind-npz");
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
      // No element, but strides that overflow: refused before Shape or xtensor see it.
      {"zero and overflow", npy(f4("(0, 4611686018427387904, 4611686018427387904)")), "too large to address"},
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

TEST_CASE("npz: load_npz_all reads integer and boolean arrays as indices, NumPy's values exactly") {
  const std::string path = (data_dir / "npz_mixed.npz").string();
  // load_npz refuses the file (an integer array is not a tensor), and says where integers go.
  CHECK_CONTAINS(message_of<IOError>([&] { load_npz(path); }), "load_npz_all");
  const NpzContents all = load_npz_all(path);
  REQUIRE(all.tensors.size() == 1);
  CHECK(all.tensors[0].first == "weight");
  CHECK(all.tensors[0].second.to_vector() == std::vector<double>{0.5, -1.0, 2.0, 4.0});
  std::map<std::string, IndexArray> ix(all.indices.begin(), all.indices.end());
  CHECK(all.indices.size() == 10);
  CHECK(ix.at("labels").values == std::vector<std::int64_t>{3, 0, 9, -1});
  CHECK(ix.at("labels").shape == Shape{4});
  CHECK(ix.at("tokens").values == std::vector<std::int64_t>{1, 2, 3, 4, 5, 6});
  CHECK(ix.at("tokens").shape == Shape{2, 3});
  CHECK(ix.at("tokens_f").values == std::vector<std::int64_t>{-3, -2, -1, 0, 1, 2});  // Fortran order, reordered
  CHECK(ix.at("mask").values == std::vector<std::int64_t>{1, 0, 1});
  CHECK(ix.at("small").values == std::vector<std::int64_t>{0, 255});
  CHECK(ix.at("tiny").values == std::vector<std::int64_t>{-128, 127});  // sign-extended
  CHECK(ix.at("u16").values == std::vector<std::int64_t>{65535});
  CHECK(ix.at("u32").values == std::vector<std::int64_t>{4294967295});
  CHECK(ix.at("u64").values == std::vector<std::int64_t>{std::numeric_limits<std::int64_t>::max()});
  CHECK(ix.at("count").shape == Shape{});
  CHECK(ix.at("count").values == std::vector<std::int64_t>{7});
  // What has no int64 or is big-endian is refused, naming the file, the key and why.
  const std::string big = (data_dir / "bad_u64_too_big.npz").string();
  const std::string m = message_of<IOError>([&] { load_npz_all(big); });
  CHECK_CONTAINS(m, "load_npz_all: \"" + big + "\": key \"ids\": value 9223372036854775808 at element 1");
  CHECK_CONTAINS(message_of<IOError>([&] { load_npz_all((data_dir / "bad_int_big_endian.npz").string()); }),
                 "unsupported dtype '>i4'");
  CHECK_CONTAINS(message_of<IOError>([&] { load_npz_all((data_dir / "bad_big_endian.npz").string()); }),
                 "unsupported dtype '>f8' (big-endian)");
}

TEST_CASE("npz: load_npz with keys reads just those, in that order, and names a missing one") {
  const std::string path = (data_dir / "npz_mixed.npz").string();
  const NamedTensors w = load_npz(path, {"weight"});  // the integer arrays beside it are not read
  REQUIRE(w.size() == 1);
  CHECK(w[0].second.to_vector() == std::vector<double>{0.5, -1.0, 2.0, 4.0});
  const std::string saved = (data_dir / "npz_savez.npz").string();
  const NamedTensors two = load_npz(saved, {"scalar", "0.bias"});
  REQUIRE(two.size() == 2);
  CHECK(two[0].first == "scalar");
  CHECK(two[1].first == "0.bias");
  CHECK(two[0].second.item() == 3.141592653589793);
  const std::string m = message_of<IOError>([&] { load_npz(path, {"weight", "bias"}); });
  CHECK_CONTAINS(m, "key \"bias\" is not in the file (it holds \"weight\", \"labels\"");
  CHECK_CONTAINS(message_of<ValueError>([&] { load_npz(path, {"weight", "weight"}); }), "asked for twice");
  CHECK_CONTAINS(message_of<IOError>([&] { load_npz(path, {"labels"}); }), "unsupported dtype '<i8'");
}

TEST_CASE("npz: truncated, garbage, corrupt and missing files are clear IOErrors") {
  TempDir dir("rewind-npz");
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
  TempDir dir("rewind-npz");
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
  TempDir dir("rewind-npz");
  const char* env = std::getenv("REWIND_NPZ_EXPORT");
  const std::string file = env && *env ? std::string(env) : dir / "for_numpy.npz";
  const NamedTensors tensors = reference_arrays();
  save_npz(file, tensors);
  check_same(load_npz(file), tensors);
  if (env && *env) MESSAGE("wrote " << file << " for tests/data/check_numpy_reads.py");
}

TEST_CASE("npz: a zip bomb is refused without being inflated (a header of shape (3,), then 64 MiB of zeros)") {
  TempDir dir("rewind-npz");
  const std::string file = dir / "bomb.npz";
  const std::string head = npy_f4_header("(3,)");
  write_zip(file, {{"w.npy", head, 64 * MiB, true}});
  const std::string honest = read_bytes(file);
  REQUIRE(honest.size() < 1 * MiB);  // deflated: 64 MiB of zeros fit in ~64 KB
  const std::string where = "load_npz: \"" + file + "\": key \"w\": ";

  SUBCASE("the zip directory tells the inflated size") {
    std::string msg;
    const std::uint64_t grew = peak_growth([&] { msg = message_of<IOError>([&] { load_npz(file); }); });
    CHECK_CONTAINS(msg, where);
    CHECK_CONTAINS(msg, "needs 12");
    CHECK(grew < 16 * MiB);
  }
  SUBCASE("the zip directory lies too: it says header + 12 bytes, like the .npy header") {
    std::string bomb = honest;
    for (const std::size_t at : headers_of(bomb, "PK\x03\x04")) put_u32(bomb, at + 22, head.size() + 12);
    for (const std::size_t at : headers_of(bomb, "PK\x01\x02")) put_u32(bomb, at + 24, head.size() + 12);
    write_bytes(file, bomb);
    std::string msg;
    const std::uint64_t grew = peak_growth([&] { msg = message_of<IOError>([&] { load_npz(file); }); });
    CHECK_CONTAINS(msg, where);
    CHECK(grew < 16 * MiB);
    CHECK_CONTAINS(msg, "the member holds more than the " + std::to_string(head.size() + 12) + " bytes its .npy header and the zip directory say");
  }
  SUBCASE("a member past the settable limit is refused before anything is allocated") {
    const std::uint64_t saved = npz_member_limit();
    CHECK(saved == std::uint64_t{16} << 30);
    set_npz_member_limit(1 * MiB);
    const std::string msg = message_of<IOError>([&] { load_npz(file); });
    set_npz_member_limit(saved);
    CHECK_CONTAINS(msg, where);
    CHECK_CONTAINS(msg, "more than the limit of 1048576 bytes (rwd::set_npz_member_limit raises it)");
  }
}

TEST_CASE("npz: a large array loads straight into its tensor (64 MiB peaks under 1.5 times its size)") {
  TempDir dir("rewind-npz");
  const std::string file = dir / "big.npz";
  for (const bool deflate : {false, true}) {
    CAPTURE(deflate);
    write_zip(file, {{"w.npy", npy_f4_header("(4096, 4096)"), 64 * MiB, deflate}});
    NamedTensors got;
    const std::uint64_t grew = peak_growth([&] { got = load_npz(file); });
    REQUIRE(got.size() == 1);
    CHECK(got[0].second.shape() == Shape{4096, 4096});
    CHECK(got[0].second.at({4095, 4095}) == 0.0);
    CHECK(grew < 96 * MiB);  // the tensor's 64 MiB, not a 64-MiB buffer besides
  }
}

TEST_CASE("npz: keys that cannot load back the same are refused before the file is touched — odd valid ones round-trip") {
  TempDir dir("rewind-npz");
  const std::string file = dir / "model.npz";
  const Tensor x = Tensor::arange(3, float32);
  const std::string longest(65531, 'k');  // 65,531 + ".npy" = 65,535, the most a zip name holds
  const NamedTensors odd = {
      {"é", x}, {"日本語.weight", x}, {"🙂", x}, {"a b/c\\d", x}, {".npy", x}, {"..", x}, {longest, x},
  };
  save_npz(file, odd);
  check_same(load_npz(file), odd);
  // The UTF-8 flag (bit 11 of the general-purpose flags) is set on a non-ASCII name, so that
  // Python's zipfile (np.load) reads "é" and not CP437 "├⌐".
  const std::string bytes = read_bytes(file);
  const std::vector<std::size_t> central = headers_of(bytes, "PK\x01\x02");
  REQUIRE(central.size() == odd.size());
  CHECK((static_cast<unsigned char>(bytes[central[0] + 9]) & 0x08) != 0);

  const std::string old_bytes = read_bytes(file);
  struct Case {
    std::string key;
    const char* message;
  };
  const Case cases[] = {
      {std::string(65532, 'k'), "is 65532 bytes; a zip member name holds at most 65535, so a key (stored as <key>.npy) at most 65531"},
      {std::string(65535, 'k'), "is 65535 bytes"},
      {std::string(70000, 'k'), "is 70000 bytes"},
      {"w\xff", "key \"w\\xff\" is not valid UTF-8"},
      {"\xc3", "is not valid UTF-8"},                 // truncated sequence
      {"\xc0\xaf", "is not valid UTF-8"},             // overlong '/'
      {"\xed\xa0\x80", "is not valid UTF-8"},         // a surrogate
      {"\xf4\x90\x80\x80", "is not valid UTF-8"},     // past U+10FFFF
      {"", "an empty key"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.key.size());
    const std::string msg = message_of<ValueError>([&] { save_npz(file, {{"ok", x}, {c.key, x}}); });
    CHECK_CONTAINS(msg, "save_npz: \"" + file + "\": ");
    CHECK_CONTAINS(msg, c.message);
    CHECK(msg.size() < 400);  // a huge key is abbreviated
    CHECK(read_bytes(file) == old_bytes);
    CHECK(dir.files() == std::set<std::string>{"model.npz"});
  }
}

TEST_CASE("npz: a 240-character file name saves (the temporary's name is short)") {
  TempDir dir("rewind-npz");
  const std::string name = std::string(236, 'm') + ".npz";
  REQUIRE(name.size() == 240);
  const NamedTensors tensors = {{"w", Tensor::arange(4, float64)}};
  save_npz(dir / name, tensors);
  check_same(load_npz(dir / name), tensors);
  write_file_atomic(dir / (std::string(236, 'c') + ".csv"), "a,b\n1,2\n");
  CHECK(read_bytes(dir / (std::string(236, 'c') + ".csv")) == "a,b\n1,2\n");
  CHECK(dir.files() == std::set<std::string>{name, std::string(236, 'c') + ".csv"});
}

TEST_CASE("npz: a save removes the temporaries that dead processes left, and nothing else") {
  TempDir dir("rewind-npz");
  // A pid that is surely gone: a child that has exited and been reaped.
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) ::_exit(0);
  REQUIRE(::waitpid(child, nullptr, 0) == child);
  const std::string dead = std::to_string(child), parent = std::to_string(::getppid()), self = std::to_string(::getpid());
  const std::set<std::string> stale = {
      ".rwd-tmp-" + dead + "-0123abcd",         // save_npz's or write_file_atomic's temporary
      ".rwd-tmp-" + dead + "-0123abcd.Xy9Q2z",  // libzip's own temporary of it
  };
  const std::set<std::string> kept = {
      ".rwd-tmp-" + parent + "-89abcdef",  // a live process's save under way
      ".rwd-tmp-" + self + "-89abcdef",    // another save of this process, under way (say, another thread)
      ".rwd-tmp-" + dead + "-0123abc",   // not the pattern: 7 hex digits
      ".rwd-tmp-" + dead + "-0123abcd.tmp~",
      ".rwd-tmp-x" + dead + "-0123abcd",
      "rwd-tmp-" + dead + "-0123abcd",
      ".model.npz.tmp-" + dead + "-0",  // an older rewind's name: not recognized, left alone
  };
  for (const auto& names : {stale, kept})
    for (const std::string& n : names) write_bytes(dir.path() / n, "partial");
  SUBCASE("save_npz") { save_npz(dir / "model.npz", {{"w", Tensor::ones({2})}}); }
  SUBCASE("write_file_atomic (History::write_csv)") { write_file_atomic(dir / "model.npz", "text"); }
  std::set<std::string> want = kept;
  want.insert("model.npz");
  CHECK(dir.files() == want);
}

TEST_CASE("npz: a member that appears twice is the library's own error, naming the file and the key") {
  TempDir dir("rewind-npz");
  const std::string file = dir / "twice.npz";
  const std::string data(12, '\0');
  write_zip(file, {{"w.npy", npy_f4_header("(3,)") + data}, {"v.npy", npy_f4_header("(3,)") + data}});
  std::string bytes = read_bytes(file);
  // Rename member v to w in its local and central headers (same length): two members "w.npy".
  for (const char* sig : {"PK\x03\x04", "PK\x01\x02"}) {
    const std::vector<std::size_t> at = headers_of(bytes, sig);
    REQUIRE(at.size() == 2);
    const std::size_t name_at = at[1] + (sig[2] == 3 ? 30 : 46);
    REQUIRE(bytes.compare(name_at, 5, "v.npy") == 0);
    bytes[name_at] = 'w';
  }
  write_bytes(file, bytes);
  CHECK(message_of<IOError>([&] { load_npz(file); }) ==
        "load_npz: \"" + file + "\": key \"w\": appears twice in the archive");
}

TEST_CASE("npz: a Fortran-order array larger than the reader's 64-KiB chunks is reordered right") {
  // Shape (300, 7, 50) float64, 840 KB, element [i, j, k] = 10000 i + 100 j + k, written first index fastest.
  TempDir dir("rewind-npz");
  const std::string file = dir / "fortran.npz";
  std::string h = "{'descr': '<f8', 'fortran_order': True, 'shape': (300, 7, 50), }";
  h.append(64 - (10 + h.size() + 1) % 64, ' ');
  h += '\n';
  std::string member = std::string("\x93NUMPY\x01\x00", 8) + static_cast<char>(h.size()) + '\0' + h;
  for (int k = 0; k < 50; ++k)
    for (int j = 0; j < 7; ++j)
      for (int i = 0; i < 300; ++i) {
        const double v = 10000.0 * i + 100.0 * j + k;
        member.append(reinterpret_cast<const char*>(&v), sizeof v);
      }
  for (const bool deflate : {false, true}) {
    CAPTURE(deflate);
    write_zip(file, {{"f.npy", member, 0, deflate}});
    const NamedTensors got = load_npz(file);
    REQUIRE(got.size() == 1);
    const Tensor& t = got[0].second;
    REQUIRE(t.shape() == Shape{300, 7, 50});
    const double* p = t.data<double>();
    std::size_t wrong = 0;
    for (int i = 0; i < 300; ++i)
      for (int j = 0; j < 7; ++j)
        for (int k = 0; k < 50; ++k) wrong += p[(i * 7 + j) * 50 + k] != 10000.0 * i + 100.0 * j + k;
    CHECK(wrong == 0);
  }
}
