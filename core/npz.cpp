// rewind/core/npz.cpp — .npz files: the zip archive, by libzip; its .npy members are encoded and parsed
// by core/npy.cpp (the codec, written by hand: a fixed header and raw little-endian bytes).
//
// The zip side is libzip's: it reads stored and deflated members, checks each member's CRC, handles zip64
// (which np.savez always writes) and writes archives; none of that is worth redoing.
#include "npz.hpp"

#include "atomic_file.hpp"
#include "detail/npy.hpp"

#include <zip.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string_view>
#include <system_error>

namespace rwd {
namespace {

namespace fs = std::filesystem;

using detail::NpyLayout;
using detail::printable;
using detail::raw_data;
using detail::ReadFn;
using detail::npy_header;
using detail::read_npy_data;
using detail::read_npy_header;

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

std::string system_message(int err) { return std::generic_category().message(err); }

// ---------------------------------------------------------------------------------------------------
// zip: libzip handles behind RAII
// ---------------------------------------------------------------------------------------------------

struct ZipDiscard {
  void operator()(zip_t* z) const { zip_discard(z); }
};
struct ZipFileClose {
  void operator()(zip_file_t* f) const { zip_fclose(f); }
};
using ZipArchive = std::unique_ptr<zip_t, ZipDiscard>;
using ZipFile = std::unique_ptr<zip_file_t, ZipFileClose>;

/// libzip's text for an error code (call right after the failure: system errors read errno).
std::string libzip_message(int code) {
  zip_error_t error;
  zip_error_init_with_code(&error, code);
  std::string text = zip_error_strerror(&error);
  zip_error_fini(&error);
  return text;
}

/// Writes the archive to `tmp` with libzip: one stored member per tensor, data not copied.
void write_archive(const fs::path& tmp, const NamedTensors& tensors, const std::string& where) {
  if (tensors.empty()) {
    // libzip deletes an archive with no members instead of writing it; np.savez() writes one, the
    // 22-byte end-of-central-directory record alone.
    static const char empty_zip[22] = {'P', 'K', '\x05', '\x06'};
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(empty_zip, sizeof empty_zip);
    out.close();
    if (!out) throw IOError(where + ": cannot write " + quoted(tmp.string()) + ": " + system_message(errno));
    return;
  }

  int code = 0;
  ZipArchive archive{zip_open(tmp.c_str(), ZIP_CREATE | ZIP_EXCL, &code)};
  if (!archive) throw IOError(where + ": cannot create " + quoted(tmp.string()) + ": " + libzip_message(code));

  // The headers must outlive zip_close, which is when libzip reads the sources; reserved up front so
  // that no reallocation moves a short string's inline buffer.
  std::vector<std::string> headers;
  headers.reserve(tensors.size());
  for (const auto& [key, tensor] : tensors) {
    headers.push_back(npy_header(tensor.shape(), tensor.dtype()));
    zip_buffer_fragment_t parts[2];
    zip_uint64_t n_parts = 0;
    parts[n_parts++] = {reinterpret_cast<zip_uint8_t*>(headers.back().data()), headers.back().size()};
    const std::size_t n_bytes = tensor.numel() * dtype_size(tensor.dtype());
    if (n_bytes > 0) {
      // libzip only reads a buffer source it does not own (freep = 0), so the const_cast is safe.
      parts[n_parts++] = {static_cast<zip_uint8_t*>(const_cast<void*>(raw_data(tensor))), n_bytes};
    }
    zip_error_t error;
    zip_error_init(&error);
    zip_source_t* source = zip_source_buffer_fragment_create(parts, n_parts, 0, &error);
    if (!source) {
      const std::string why = zip_error_strerror(&error);
      zip_error_fini(&error);
      throw IOError(where + ": key " + quote_key(key, '"') + ": " + why);
    }
    zip_error_fini(&error);
    const std::string member = key + ".npy";
    // ZIP_FL_ENC_UTF_8: the name is UTF-8 (save_npz checked it), so libzip sets the archive's UTF-8
    // flag for a non-ASCII name and Python's zipfile (np.load) reads it as written, not as CP437.
    const zip_int64_t index = zip_file_add(archive.get(), member.c_str(), source, ZIP_FL_ENC_UTF_8);
    if (index < 0) {
      zip_source_free(source);  // not taken over by a failed zip_file_add
      throw IOError(where + ": key " + quote_key(key, '"') + ": cannot add the member: " + zip_strerror(archive.get()));
    }
    if (zip_set_file_compression(archive.get(), static_cast<zip_uint64_t>(index), ZIP_CM_STORE, 0) != 0) {
      throw IOError(where + ": key " + quote_key(key, '"') + ": " + zip_strerror(archive.get()));
    }
  }
  // zip_close writes everything; on failure the archive stays open (discarded by the handle) and
  // libzip removes its own partial output.
  if (zip_close(archive.get()) != 0) {
    throw IOError(where + ": writing the archive failed: " + zip_strerror(archive.get()));
  }
  archive.release();  // zip_close freed it
}



/// The bytes `s` are well-formed UTF-8 as Python decodes it (no overlong forms, no surrogates, nothing
/// past U+10FFFF) — what libzip stores as UTF-8 and np.load reads back unchanged.
bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len;
    std::uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      len = 2, cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3, cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4, cp = c & 0x07;
    } else {
      return false;  // a continuation byte first, 0xc0/0xc1 (always overlong) or 0xf5..0xff
    }
    if (s.size() - i < len) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3f);
    }
    static constexpr std::uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += len;
  }
  return true;
}

/// The longest key: a zip member name's length is a 16-bit field, and the member is `<key>.npy`.
constexpr std::size_t max_key_bytes = 0xffff - 4;

/// Throws ValueError if `key` cannot be saved and loaded back as the same key.
void check_key(const std::string& key, const std::string& where) {
  if (key.empty()) throw ValueError(where + ": an empty key (NumPy could not name its array)");
  const std::string shown = quote_key(key, '"');
  if (key.find('\0') != std::string::npos) throw ValueError(where + ": key " + shown + " contains '\\0'");
  if (key.size() > max_key_bytes) {
    throw ValueError(where + ": key " + shown + " is " + std::to_string(key.size()) + " bytes; a zip member name " +
                     "holds at most 65535, so a key (stored as <key>.npy) at most " + std::to_string(max_key_bytes));
  }
  // libzip takes a name flagged UTF-8 only when each byte below 0x20 is a tab, LF or CR (it reads any
  // other as CP437, not UTF-8, and refuses the name at zip_file_add, with the file already begun).
  for (const char c : key) {
    const auto b = static_cast<unsigned char>(c);
    if (b < 0x20 && b != '\t' && b != '\n' && b != '\r')
      throw ValueError(where + ": key " + shown + " contains the control byte " + printable(std::string_view(&c, 1)) +
                       " (a zip member name takes no control byte but tab, LF and CR)");
  }
  if (!valid_utf8(key)) {
    throw ValueError(where + ": key " + shown + " is not valid UTF-8 (zip member names are UTF-8 text, and " +
                     "other bytes would not load back as the same key)");
  }
}

std::atomic<std::uint64_t> member_limit{std::uint64_t{16} << 30};

/// A member's array: a tensor, or (with integers) an integer or boolean array.
struct MemberArray {
  Tensor tensor;
  std::optional<IndexArray> indices;
};

/// Member `index` of the archive: the .npy header first, then exactly the bytes it needs. Integer and
/// boolean arrays are read (as indices) only when `integers`, refused otherwise.
MemberArray read_member(zip_t* archive, zip_uint64_t index, const zip_stat_t& st, const std::string& what,
                        bool integers = false) {
  // What the zip directory says, checked against the limit and what the compressed bytes can hold,
  // before anything is inflated.
  std::optional<std::uint64_t> size;
  if (st.valid & ZIP_STAT_SIZE) size = st.size;
  const std::uint64_t limit = member_limit.load(std::memory_order_relaxed);
  auto over_limit = [&](std::uint64_t bytes, const char* by) {
    return IOError(what + ": the member is " + std::to_string(bytes) + " bytes " + by + ", more than the limit of " +
                   std::to_string(limit) + " bytes (rwd::set_npz_member_limit raises it)");
  };
  // Stored (np.savez) or deflated (np.savez_compressed) only: bzip2 (which libzip inflates), LZMA,
  // zstd … expand by ratios with no useful bound, so a lying directory size could not be told from an
  // honest one before the tensor it asks for is allocated. (93 is zstd: ZIP_CM_ZSTD from libzip 1.8 on.)
  if ((st.valid & ZIP_STAT_COMP_METHOD) && st.comp_method != ZIP_CM_STORE && st.comp_method != ZIP_CM_DEFLATE) {
    const auto m = st.comp_method;
    const char* known = m == ZIP_CM_BZIP2 ? " (bzip2)" : m == ZIP_CM_LZMA ? " (LZMA)" : m == 93 ? " (zstd)"
                        : m == ZIP_CM_XZ ? " (xz)" : m == ZIP_CM_DEFLATE64 ? " (deflate64)" : "";
    throw IOError(what + ": compression method " + std::to_string(m) + known +
                  " is not read: an .npz member is stored (np.savez) or deflated (np.savez_compressed)");
  }
  if (size && *size > limit) throw over_limit(*size, "by the zip directory");
  if (size && (st.valid & ZIP_STAT_COMP_SIZE) && (st.valid & ZIP_STAT_COMP_METHOD)) {
    // A stored member is its compressed bytes; deflate expands at most 1032:1 (a 258-byte match per
    // 2 bits), so a directory size past that is a lie.
    const std::uint64_t most = st.comp_method == ZIP_CM_STORE ? st.comp_size
                               : st.comp_size > (std::uint64_t{1} << 53) ? std::uint64_t(-1)
                                                                         : st.comp_size * 1100 + 4096;
    if (*size > most) {
      throw IOError(what + ": the zip directory says the member is " + std::to_string(*size) + " bytes, but its " +
                    std::to_string(st.comp_size) + " compressed bytes cannot hold that: the archive is corrupt");
    }
  }

  ZipFile file{zip_fopen_index(archive, index, 0)};
  if (!file) throw IOError(what + ": cannot open the member: " + zip_strerror(archive));
  const ReadFn read = [&](char* dst, std::size_t n) {
    std::size_t done = 0;
    while (done < n) {
      const zip_int64_t got = zip_fread(file.get(), dst + done, n - done);
      if (got < 0) {
        const int code = zip_error_code_zip(zip_file_get_error(file.get()));
        std::string why = zip_file_strerror(file.get());
        if (code == ZIP_ER_CRC) why += ": the member's data is corrupt";
        throw IOError(what + ": cannot read the member: " + why);
      }
      if (got == 0) break;
      done += static_cast<std::size_t>(got);
    }
    return done;
  };

  const NpyLayout layout = read_npy_header(read, size, what, integers);
  const std::uint64_t need = layout.header_bytes + static_cast<std::uint64_t>(layout.data_bytes);
  if (need < layout.data_bytes || need > limit) throw over_limit(need, "by its .npy header");
  if (size && *size != need) {
    throw IOError(what + ": data is " + std::to_string(*size - layout.header_bytes) + " bytes, but shape " +
                  layout.shape.str() + " of " + detail::element_name(layout) + " needs " + std::to_string(layout.data_bytes) +
                  (*size < need ? " (truncated)" : "") + " (by the zip directory's size of the member)");
  }
  MemberArray out;
  if (layout.int_bytes)
    out.indices = IndexArray{detail::read_npy_integers(read, layout, what), layout.shape};
  else
    out.tensor = read_npy_data(read, layout, what);
  // Nothing may follow the data. Reading on to the member's end is also when libzip checks its CRC.
  char extra;
  if (read(&extra, 1) != 0) {
    throw IOError(what + ": the member holds more than the " + std::to_string(need) +
                  " bytes its .npy header and the zip directory say: the archive is corrupt");
  }
  return out;
}

/// The name of a member that appears twice in the archive at `path` (opened without libzip's
/// consistency checks, which refuse the whole archive for it), or "" if none does.
std::string duplicate_member(const std::string& path) {
  int code = 0;
  ZipArchive archive{zip_open(path.c_str(), ZIP_RDONLY, &code)};
  if (!archive) return "";
  std::set<std::string> names;
  const zip_int64_t n = zip_get_num_entries(archive.get(), 0);
  for (zip_int64_t i = 0; i < n; ++i) {
    const char* name = zip_get_name(archive.get(), static_cast<zip_uint64_t>(i), 0);
    if (name && !names.insert(name).second) return name;
  }
  return "";
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// public
// ---------------------------------------------------------------------------------------------------

void set_npz_member_limit(std::uint64_t bytes) { member_limit.store(bytes, std::memory_order_relaxed); }

std::uint64_t npz_member_limit() { return member_limit.load(std::memory_order_relaxed); }

std::string quote_key(std::string_view key, char quote) {
  // A key past `most` bytes shows its first `head` and last `tail` bytes around "…", and its length
  // after the closing quote: two long names that share a prefix (a deep model's parameters) and differ
  // at the end stay apart, and the length tells apart most of those that differ in the middle.
  constexpr std::size_t most = 100, head = 60, tail = 36;
  auto append = [&](std::string& out, std::string_view part) {
    for (std::size_t i = 0; i < part.size(); ++i) {
      const char c = part[i];
      if (c == quote || c == '\\') {
        out += '\\';
        out += c;
      } else {
        out += printable(part.substr(i, 1));  // as is, or \xNN
      }
    }
  };
  std::string out(1, quote);
  if (key.size() <= most) {
    append(out, key);
    return out + quote;
  }
  append(out, key.substr(0, head));
  out += "…";
  append(out, key.substr(key.size() - tail));
  return out + quote + " (" + std::to_string(key.size()) + " bytes)";
}

std::string quote_keys(const std::vector<std::string>& keys, char quote) {
  constexpr std::size_t most = 20;
  std::string out;
  for (std::size_t k = 0; k < keys.size() && k < most; ++k) out += (k ? ", " : "") + quote_key(keys[k], quote);
  if (keys.size() > most) out += ", … (" + std::to_string(keys.size()) + " in all)";
  return out;
}

void save_npz(const std::string& path, const NamedTensors& tensors) {
  const std::string where = "save_npz: " + quoted(path);

  // ---- arguments, before touching any file ----
  std::set<std::string> keys;
  for (const auto& [key, tensor] : tensors) {
    check_key(key, where);
    if (!keys.insert(key).second) throw ValueError(where + ": key " + quote_key(key, '"') + " appears twice");
    if (!tensor.defined()) throw ValueError(where + ": key " + quote_key(key, '"') + ": the tensor is undefined");
  }
  write_atomically(path, where, [&](const std::string& tmp) { write_archive(tmp, tensors, where); });
}

namespace {

// Opens the archive at `path` and calls visit(archive, index, stat, key, what) for each member in
// archive order, after checking its name and that its key is not repeated.
template <class Visit>
void for_each_member(const std::string& path, const std::string& where, Visit visit) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (status.type() == fs::file_type::not_found) throw IOError(where + ": no such file");
  if (status.type() == fs::file_type::directory) throw IOError(where + ": is a directory, not an .npz file");
  // A FIFO would block zip_open until some writer came; a device or a socket is no archive either.
  const fs::file_type type = status.type();
  if (type == fs::file_type::fifo || type == fs::file_type::character || type == fs::file_type::block ||
      type == fs::file_type::socket)
    throw IOError(where + ": is not a regular file (a FIFO, a device or a socket), not an .npz file");

  int code = 0;
  ZipArchive archive{zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &code)};
  if (!archive) {
    std::string why = libzip_message(code);
    if (code == ZIP_ER_EXISTS) {
      // libzip's consistency check refuses an archive with a name twice ("File already exists").
      const std::string name = duplicate_member(path);
      constexpr std::string_view ext = ".npy";
      if (name.size() >= ext.size() && name.compare(name.size() - ext.size(), ext.size(), ext) == 0) {
        throw IOError(where + ": key " + quote_key(name.substr(0, name.size() - ext.size()), '"') +
                      ": appears twice in the archive");
      }
      if (!name.empty()) throw IOError(where + ": member " + quote_key(name, '"') + " appears twice in the archive");
    } else if (code == ZIP_ER_NOZIP) {
      why += ": an .npz is a zip archive, and a truncated one lacks the directory at its end";
    } else if (code == ZIP_ER_INCONS) {
      why += ": the archive is corrupt, or a member's name is flagged UTF-8 but is not UTF-8 or holds a control "
             "byte (libzip refuses both; rewind takes no key with a control byte but tab, LF and CR)";
    }
    throw IOError(where + ": cannot open: " + why);
  }

  std::set<std::string> keys;
  const zip_int64_t n = zip_get_num_entries(archive.get(), 0);
  for (zip_int64_t i = 0; i < n; ++i) {
    const auto index = static_cast<zip_uint64_t>(i);
    zip_stat_t st;
    zip_stat_init(&st);
    // Names as libzip decodes them, like Python's zipfile: UTF-8 when flagged or valid as UTF-8, else
    // CP437. A key save_npz wrote (checked UTF-8) comes back byte for byte.
    if (zip_stat_index(archive.get(), index, 0, &st) != 0 || !(st.valid & ZIP_STAT_NAME)) {
      throw IOError(where + ": member " + std::to_string(i) + ": " + zip_strerror(archive.get()));
    }
    const std::string name = st.name;
    constexpr std::string_view ext = ".npy";
    if (name.size() < ext.size() || name.compare(name.size() - ext.size(), ext.size(), ext) != 0) {
      throw IOError(where + ": member " + quote_key(name, '"') +
                    " is not an .npy array (an .npz holds one <key>.npy member per array)");
    }
    const std::string key = name.substr(0, name.size() - ext.size());
    const std::string what = where + ": key " + quote_key(key, '"');
    // One rule for keys, both ways: what save_npz refuses, a load refuses too. A name without the
    // UTF-8 flag (how Python's zipfile writes an ASCII one) is decoded by libzip as CP437, whose glyphs
    // turn a control byte into another key than NumPy's (\x01 becomes U+263A); one with the flag and a
    // control byte libzip refuses at zip_open (below). So the raw name is checked as save_npz checks.
    if (const char* raw = zip_get_name(archive.get(), index, ZIP_FL_ENC_RAW)) {
      const std::string_view raw_name(raw);
      for (const char c : raw_name) {
        const auto b = static_cast<unsigned char>(c);
        if (b < 0x20 && b != '\t' && b != '\n' && b != '\r')
          throw IOError(where + ": key " + quote_key(raw_name.substr(0, raw_name.size() - std::min(raw_name.size(), ext.size())), '"') +
                        " (as NumPy reads it) contains the control byte " + printable(std::string_view(&c, 1)) +
                        ": rewind takes no key with a control byte but tab, LF and CR, as it could not save it "
                        "back; rename the key in NumPy");
      }
    }
    if (!keys.insert(key).second) throw IOError(what + ": appears twice in the archive");
    visit(archive.get(), index, st, key, what);
  }
}

}  // namespace

NamedTensors load_npz(const std::string& path) {
  NamedTensors out;
  for_each_member(path, "load_npz: " + quoted(path),
                  [&](zip_t* archive, zip_uint64_t index, const zip_stat_t& st, const std::string& key,
                      const std::string& what) {
                    Tensor t = read_member(archive, index, st, what).tensor;
                    t.set_name(key);
                    out.emplace_back(key, std::move(t));
                  });
  return out;
}

NamedTensors load_npz(const std::string& path, const std::vector<std::string>& keys) {
  const std::string where = "load_npz: " + quoted(path);
  std::map<std::string, std::size_t> wanted;  // key → its place in `keys`
  for (std::size_t i = 0; i < keys.size(); ++i)
    if (!wanted.emplace(keys[i], i).second)
      throw ValueError(where + ": key " + quote_key(keys[i], '"') + " is asked for twice");
  std::vector<Tensor> found(keys.size());
  std::vector<std::string> held;
  for_each_member(path, where,
                  [&](zip_t* archive, zip_uint64_t index, const zip_stat_t& st, const std::string& key,
                      const std::string& what) {
                    held.push_back(key);
                    auto it = wanted.find(key);
                    if (it == wanted.end()) return;  // not asked for: not read
                    found[it->second] = read_member(archive, index, st, what).tensor;
                    found[it->second].set_name(key);
                  });
  NamedTensors out;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (!found[i].defined()) {
      throw IOError(where + ": key " + quote_key(keys[i], '"') + " is not in the file (it holds " +
                    (held.empty() ? std::string("no arrays") : quote_keys(held, '"')) + ")");
    }
    out.emplace_back(keys[i], std::move(found[i]));
  }
  return out;
}

std::vector<std::string> npz_keys(const std::string& path) {
  std::vector<std::string> out;
  for_each_member(path, "npz_keys: " + quoted(path),
                  [&](zip_t*, zip_uint64_t, const zip_stat_t&, const std::string& key, const std::string&) {
                    out.push_back(key);
                  });
  return out;
}

NpzContents load_npz_all(const std::string& path) {
  NpzContents out;
  for_each_member(path, "load_npz_all: " + quoted(path),
                  [&](zip_t* archive, zip_uint64_t index, const zip_stat_t& st, const std::string& key,
                      const std::string& what) {
                    MemberArray m = read_member(archive, index, st, what, /*integers=*/true);
                    if (m.indices) {
                      out.indices.emplace_back(key, std::move(*m.indices));
                    } else {
                      m.tensor.set_name(key);
                      out.tensors.emplace_back(key, std::move(m.tensor));
                    }
                  });
  return out;
}

}  // namespace rwd
