// Fuzzing load_npz: thousands of damaged .npz files (truncations at every offset, bit flips, byte
// replacements, lying sizes and offsets in the zip headers, crafted .npy headers with their CRCs made
// right), seeded so every run sees the same cases. Each load must give the original arrays back (the
// damage hit bytes nothing reads, like a timestamp), other arrays only where the bytes are still a
// valid file (a crafted header), or a rwd::IOError: no other exception, no crash (run it under the
// ASan+UBSan build too), and bounded memory.
#include <doctest/doctest.h>

#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "core/memory.hpp"
#include "core/npz.hpp"
#include "core/random.hpp"
#include "core/shape.hpp"
#include "core/tensor.hpp"
#include "core/threads.hpp"

#include <unistd.h>
#include <zip.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "../support.hpp"

using namespace rwd;
namespace fs = std::filesystem;

namespace {

std::uint32_t crc32(const std::string& s) {
  std::uint32_t c = 0xffffffffu;
  for (const char ch : s) {
    c ^= static_cast<unsigned char>(ch);
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return ~c;
}

std::uint32_t get_u16(const std::string& s, std::size_t at) {
  return std::uint32_t(std::uint8_t(s[at])) | std::uint32_t(std::uint8_t(s[at + 1])) << 8;
}
std::uint32_t get_u32(const std::string& s, std::size_t at) { return get_u16(s, at) | get_u16(s, at + 2) << 16; }
void set_u16(std::string& s, std::size_t at, std::uint32_t v) {
  s[at] = static_cast<char>(v & 0xff);
  s[at + 1] = static_cast<char>((v >> 8) & 0xff);
}
void set_u32(std::string& s, std::size_t at, std::uint32_t v) {
  set_u16(s, at, v & 0xffff);
  set_u16(s, at + 2, v >> 16);
}

std::vector<std::size_t> find_all(const std::string& s, const char* sig) {
  std::vector<std::size_t> at;
  for (std::size_t i = s.find(sig, 0, 4); i != std::string::npos; i = s.find(sig, i + 1, 4)) at.push_back(i);
  return at;
}

/// The same arrays, bit for bit.
bool same(const NamedTensors& a, const NamedTensors& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].first != b[i].first || a[i].second.dtype() != b[i].second.dtype() || a[i].second.shape() != b[i].second.shape())
      return false;
    if (encode_npy(a[i].second) != encode_npy(b[i].second)) return false;
  }
  return true;
}

/// A deflated archive of `tensors` (like np.savez_compressed), written with libzip.
std::string deflated_npz(const fs::path& path, const NamedTensors& tensors) {
  fs::remove(path);
  int code = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_CREATE | ZIP_EXCL, &code);
  REQUIRE(z);
  std::vector<std::string> bytes;
  bytes.reserve(tensors.size());
  for (const auto& [key, t] : tensors) {
    bytes.push_back(encode_npy(t));
    zip_source_t* src = zip_source_buffer(z, bytes.back().data(), bytes.back().size(), 0);
    REQUIRE(src);
    const zip_int64_t idx = zip_file_add(z, (key + ".npy").c_str(), src, ZIP_FL_ENC_UTF_8);
    REQUIRE(idx >= 0);
    REQUIRE(zip_set_file_compression(z, idx, ZIP_CM_DEFLATE, 9) == 0);
  }
  REQUIRE(zip_close(z) == 0);
  return read_bytes(path);
}

/// Peak resident memory in KiB (VmHWM), after resetting it to the current size if `reset`.
std::uint64_t peak_kb(bool reset) {
  if (reset) {
    std::ofstream clear("/proc/self/clear_refs");
    clear << "5";
  }
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6));
  return 0;
}

/// A fresh directory `prefix<pid>` for thousands of rewrites of one small file: in memory (/dev/shm)
/// where there is one, since a disk file system may flush each truncate-and-rewrite (ext4's
/// auto_da_alloc) and take a minute over it.
fs::path fuzz_dir(const std::string& prefix) {
  std::error_code ec;
  const fs::path base = fs::is_directory("/dev/shm", ec) && ::access("/dev/shm", W_OK) == 0 ? fs::path("/dev/shm")
                                                                                            : fs::temp_directory_path();
  const fs::path dir = base / (prefix + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir;
}

}  // namespace

TEST_CASE("npz fuzz: damaged files load as the original, or throw IOError — never anything else") {
  const fs::path dir = fuzz_dir("rewind-npz-fuzz-");
  const fs::path file = dir / "fuzz.npz";
  const fs::path data_dir = REWIND_TEST_DATA_DIR;

  // ---- the valid files ----
  Generator gen(11);
  struct Seed {
    std::string name;
    std::string bytes;
  };
  std::vector<Seed> seeds;
  save_npz(file.string(), {{"w", Tensor::randn({4, 3}, gen, float32)},
                           {"b", Tensor::randn({3}, gen, float32)},
                           {"s", Tensor::scalar(2.5, float32)},
                           {"e", Tensor::zeros({0, 2}, float32)}});
  seeds.push_back({"stored float32, 0-d and empty", read_bytes(file)});
  save_npz(file.string(), {{"x", Tensor::randn({2, 2, 2}, gen, float64)}, {"ones8", Tensor::ones({1, 1, 1, 1, 1, 1, 2, 1}, float64)}});
  seeds.push_back({"stored float64, 8-d", read_bytes(file)});
  seeds.push_back({"deflated float32 and float64 (libzip)",
                   deflated_npz(file, {{"w", Tensor::randn({8, 5}, gen, float32)},
                                       {"d", Tensor::randn({6}, gen, float64)},
                                       {"z", Tensor::zeros({3, 0}, float64)}})});
  seeds.push_back({"np.savez (zip64, Fortran order)", read_bytes(data_dir / "npz_savez.npz")});
  seeds.push_back({"np.savez_compressed", read_bytes(data_dir / "npz_savez_compressed.npz")});
  save_npz(file.string(), {});
  seeds.push_back({"no arrays", read_bytes(file)});

  std::mt19937_64 rng(20240610);
  auto uniform = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  std::size_t cases = 0, loaded = 0, refused = 0;
  const std::uint64_t start_kb = peak_kb(true);

  for (const Seed& seed : seeds) {
    CAPTURE(seed.name);
    write_bytes(file, seed.bytes);
    const NamedTensors original = load_npz(file.string());
    const std::string& good = seed.bytes;

    // `valid_other`: the bytes may still be a valid file with other arrays (a crafted header).
    auto attempt = [&](const std::string& bytes, const std::string& what, bool valid_other = false) {
      ++cases;
      write_bytes(file, bytes);
      try {
        const NamedTensors got = load_npz(file.string());
        ++loaded;
        if (!valid_other) CHECK_MESSAGE(same(got, original), seed.name << ", " << what << ": loaded different arrays");
      } catch (const IOError&) {
        ++refused;
      } catch (const std::exception& e) {
        FAIL_CHECK(seed.name << ", " << what << ": threw something else than IOError: " << e.what());
      }
    };

    // Truncation at every offset.
    for (std::size_t n = 0; n < good.size(); ++n) attempt(good.substr(0, n), "truncated to " + std::to_string(n));
    // Bit flips, 1 to 4 at a time.
    for (int i = 0; i < 400; ++i) {
      std::string bad = good;
      const int flips = 1 + static_cast<int>(uniform(4));
      for (int k = 0; k < flips; ++k) bad[uniform(bad.size())] ^= static_cast<char>(1u << uniform(8));
      attempt(bad, "bit flips " + std::to_string(i));
    }
    // Byte replacements.
    static const unsigned char values[] = {0x00, 0xff, 0x7f, 0x80, 0x01, 0xfe};
    for (int i = 0; i < 400; ++i) {
      std::string bad = good;
      const int n = 1 + static_cast<int>(uniform(3));
      for (int k = 0; k < n; ++k)
        bad[uniform(bad.size())] = static_cast<char>(uniform(2) ? values[uniform(6)] : uniform(256));
      attempt(bad, "bytes replaced " + std::to_string(i));
    }
    // Lying sizes, offsets and lengths in the local headers, the central directory and its end record.
    struct Field {
      const char* sig;
      std::size_t offset, width;
    };
    static const Field fields[] = {
        {"PK\x03\x04", 14, 4}, {"PK\x03\x04", 18, 4}, {"PK\x03\x04", 22, 4}, {"PK\x03\x04", 26, 2}, {"PK\x03\x04", 28, 2},
        {"PK\x03\x04", 8, 2},  // compression method
        {"PK\x01\x02", 16, 4}, {"PK\x01\x02", 20, 4}, {"PK\x01\x02", 24, 4}, {"PK\x01\x02", 28, 2}, {"PK\x01\x02", 30, 2},
        {"PK\x01\x02", 42, 4}, {"PK\x01\x02", 10, 2},
        {"PK\x05\x06", 8, 2},  {"PK\x05\x06", 10, 2}, {"PK\x05\x06", 12, 4}, {"PK\x05\x06", 16, 4},
        {"PK\x06\x06", 24, 4}, {"PK\x06\x06", 32, 4}, {"PK\x06\x06", 40, 4}, {"PK\x06\x06", 48, 4},  // zip64 end record
    };
    for (const Field& f : fields) {
      for (const std::size_t at : find_all(good, f.sig)) {
        if (at + f.offset + f.width > good.size()) continue;
        const std::uint32_t v = f.width == 2 ? get_u16(good, at + f.offset) : get_u32(good, at + f.offset);
        const std::uint32_t lies[] = {0, 1, v - 1, v + 1, v * 2, v + 64, 0xffffffffu, 0x7fffffffu, 0xfffffffeu,
                                      static_cast<std::uint32_t>(rng())};
        for (const std::uint32_t lie : lies) {
          if (lie == v) continue;
          std::string bad = good;
          f.width == 2 ? set_u16(bad, at + f.offset, lie & 0xffff) : set_u32(bad, at + f.offset, lie);
          attempt(bad, std::string("field ") + std::to_string(f.offset) + " of the header at " + std::to_string(at) +
                           " := " + std::to_string(lie));
        }
      }
    }
    // Crafted .npy headers in the first stored member, its CRC (local and central) made right, so that
    // the zip layer passes them to the .npy reader.
    const std::vector<std::size_t> local = find_all(good, "PK\x03\x04");
    const std::vector<std::size_t> central = find_all(good, "PK\x01\x02");
    if (!local.empty() && !central.empty() && get_u16(good, local[0] + 8) == 0) {
      const std::size_t data_at = local[0] + 30 + get_u16(good, local[0] + 26) + get_u16(good, local[0] + 28);
      const std::size_t member_size = get_u32(good, local[0] + 18);
      if (good.compare(data_at, 6, "\x93NUMPY") == 0 && member_size != 0xffffffffu) {
        const std::size_t header_len = get_u16(good, data_at + 8);
        static const char* dicts[] = {
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
            "{'descr': '<f4', 'fortran_order': True, 'shape': (3, 4), }",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4611686018427387904, 4611686018427387904), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (18446744073709551615,), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (268435456, 2), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1), }",
            "{'descr': '<u1', 'fortran_order': False, 'shape': (3,), }",
            "{'descr': '|O', 'fortran_order': False, 'shape': (3,), }",
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'descr': '<f8'}",
            "{'descr': '<f4', 'shape': (3,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3", "{", "", "}{", "{'descr': '\\x00'}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (,), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-3,), }",
        };
        auto with_member = [&](std::string member_bytes) {
          // Same length as the original member, so no offset moves; fix the CRCs.
          std::string bad = good;
          bad.replace(data_at, member_size, member_bytes);
          const std::uint32_t crc = crc32(member_bytes);
          set_u32(bad, local[0] + 14, crc);
          set_u32(bad, central[0] + 16, crc);
          return bad;
        };
        const std::string member = good.substr(data_at, member_size);
        for (const char* d : dicts) {
          std::string dict = d;
          if (dict.size() + 1 > header_len) continue;
          dict.append(header_len - 1 - dict.size(), ' ');
          dict += '\n';
          std::string m = member;
          m.replace(10, header_len, dict);
          attempt(with_member(m), std::string("crafted header ") + d, true);
        }
        // The header length itself: 0, short, long, past the member, and NPY version 2.0's 4 bytes.
        for (const std::uint32_t len : {0u, 1u, 10u, 0xffffu, static_cast<std::uint32_t>(header_len - 16)}) {
          std::string m = member;
          set_u16(m, 8, len);
          attempt(with_member(m), "header length " + std::to_string(len), true);
        }
        for (const unsigned char version : {0, 2, 3, 4, 0xff}) {
          std::string m = member;
          m[6] = static_cast<char>(version);
          attempt(with_member(m), "version " + std::to_string(version), true);
        }
      }
    }
  }

  const std::uint64_t grew_kb = peak_kb(false) - start_kb;
  MESSAGE(cases << " damaged files: " << loaded << " loaded, " << refused << " refused with IOError; peak memory grew "
                << grew_kb / 1024 << " MiB");
  CHECK(cases > 10000);
  // Bounded: a member inflated past its header, or a tensor allocated for a lying size, would be
  // gigabytes. Under AddressSanitizer, freed blocks stay resident in its quarantine (256 MiB by
  // default) with their shadow and allocator caches (about 350 MiB here), so the bound is looser there.
#ifdef __SANITIZE_ADDRESS__
  CHECK(grew_kb < 1024 * 1024);
#else
  CHECK(grew_kb < 64 * 1024);
#endif
  std::error_code ec;
  fs::remove_all(dir, ec);
}

TEST_CASE("npz fuzz: load_npz_all and load_npz with keys on damaged integer arrays throw IOError or load — never anything else") {
  const fs::path dir = fuzz_dir("rewind-npz-fuzz-int-");
  const fs::path file = dir / "mixed.npz";
  const std::string good = read_bytes(fs::path(REWIND_TEST_DATA_DIR) / "npz_mixed.npz");
  std::mt19937_64 rng(20261130);
  std::size_t loaded = 0, refused = 0;
  for (int k = 0; k < 1500; ++k) {
    std::string bytes = good;
    const int kind = k % 3;
    if (kind == 0) {  // one byte changed
      bytes[rng() % bytes.size()] = static_cast<char>(rng());
    } else if (kind == 1) {  // cut short
      bytes.resize(rng() % bytes.size());
    } else {  // a run of bytes overwritten
      const std::size_t at = rng() % bytes.size(), n = std::min<std::size_t>(1 + rng() % 16, bytes.size() - at);
      for (std::size_t i = 0; i < n; ++i) bytes[at + i] = static_cast<char>(rng());
    }
    write_bytes(file, bytes);
    try {
      (k % 2 ? (void)load_npz_all(file.string()) : (void)load_npz(file.string(), {"weight"}));
      ++loaded;
    } catch (const IOError&) {
      ++refused;
    } catch (const std::exception& e) {
      FAIL_CHECK("damage " << k << " threw something other than IOError: " << e.what());
    }
  }
  fs::remove_all(dir);
  CHECK(refused > 100);  // most damage is caught (by the CRC, the header, the sizes)
  MESSAGE(loaded << " loaded, " << refused << " refused");
}
