// rewind/core/npz.cpp — .npz files: the .npy members encoded and parsed here, the zip archive by libzip.
//
// The .npy side is small enough to write by hand (a fixed header and raw little-endian bytes). The zip
// side is libzip's: it reads stored and deflated members, checks each member's CRC, handles zip64
// (which np.savez always writes) and writes archives; none of that is worth redoing.
#include "npz.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <zip.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <set>
#include <string_view>
#include <system_error>

namespace rwd {
namespace {

namespace fs = std::filesystem;

// The .npy data is the tensor's bytes as they are in memory, which is the file's byte order only here.
static_assert(std::endian::native == std::endian::little, "npz.cpp copies raw little-endian bytes");

constexpr std::string_view npy_magic{"\x93NUMPY", 6};
constexpr std::size_t npy_align = 64;               // NumPy's ARRAY_ALIGN: data starts on this boundary

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

/// Text for a message: printable ASCII as is, anything else as \xNN, cut after `max` characters.
std::string printable(std::string_view s, std::size_t max = 160) {
  std::string out;
  for (std::size_t i = 0; i < s.size() && i < max; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      static const char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (s.size() > max) out += "…";
  return out;
}

std::string system_message(int err) { return std::generic_category().message(err); }

// ---------------------------------------------------------------------------------------------------
// .npy: writing
// ---------------------------------------------------------------------------------------------------

const char* descr_of(Dtype dtype) { return dtype == Dtype::f32 ? "<f4" : "<f8"; }

/// Python's repr of a shape tuple: "()", "(5,)", "(2, 3)".
std::string shape_repr(const Shape& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.ndim(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.ndim() == 1) s += ",";
  return s + ")";
}

/// Magic, version 1.0, header length and header, exactly as numpy.lib.format writes them.
std::string npy_header(const Shape& shape, Dtype dtype) {
  std::string dict = std::string("{'descr': '") + descr_of(dtype) +
                     "', 'fortran_order': False, 'shape': " + shape_repr(shape) + ", }";
  // Pad with spaces and a final '\n' so that magic + version + length + header is a multiple of 64;
  // like NumPy, an already aligned header still gets a full 64 spaces. (NumPy 1.24 first appends
  // 21 − digits(shape[0]) spare spaces for growing the first axis in place. With at most 8 dimensions
  // they never move the header past a 64-byte boundary — that would take a shape whose nonzero
  // dimensions multiply past 2^63 — so the bytes are the same without them.) At most 8 dimensions
  // also keep the header far below version 1.0's 65535-byte limit: version 2.0 is never needed.
  const std::size_t prefix = npy_magic.size() + 2 + 2;
  const std::size_t hlen = dict.size() + 1;
  const std::size_t pad = npy_align - (prefix + hlen) % npy_align;
  const std::size_t total = hlen + pad;

  std::string out(npy_magic);
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(total & 0xff);
  out += static_cast<char>((total >> 8) & 0xff);
  out += dict;
  out.append(pad, ' ');
  out += '\n';
  return out;
}

const void* raw_data(const Tensor& t) {
  return t.dtype() == Dtype::f32 ? static_cast<const void*>(t.data<float>())
                                 : static_cast<const void*>(t.data<double>());
}

// ---------------------------------------------------------------------------------------------------
// .npy: reading the header, a Python dict literal such as
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
// ---------------------------------------------------------------------------------------------------

struct NpyHeader {
  std::string descr;
  bool descr_is_structured = false;  // a list of fields rather than one type string
  bool fortran_order = false;
  std::vector<std::uint64_t> shape;
};

class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& what) : m_s(text), m_what(what) {}

  NpyHeader parse() {
    NpyHeader h;
    std::set<std::string> seen;
    expect('{');
    while (true) {
      skip_space();
      if (peek() == '}') break;
      const std::string key = string_literal();
      if (!seen.insert(key).second) fail("key '" + key + "' appears twice");
      expect(':');
      skip_space();
      if (key == "descr") {
        if (peek() == '[') {
          h.descr_is_structured = true;
          skip_bracketed();
        } else {
          h.descr = string_literal();
        }
      } else if (key == "fortran_order") {
        h.fortran_order = boolean();
      } else if (key == "shape") {
        h.shape = tuple_of_ints();
      } else {
        fail("unexpected key '" + printable(key) + "'");
      }
      skip_space();
      if (peek() == ',') {
        ++m_i;
        continue;
      }
      if (peek() != '}') fail("expected ',' or '}'");
    }
    ++m_i;  // '}'
    skip_space();
    if (m_i != m_s.size()) fail("text after the closing '}'");
    for (const char* k : {"descr", "fortran_order", "shape"}) {
      if (!seen.count(k)) fail(std::string("no '") + k + "' key", false);
    }
    return h;
  }

 private:
  /// Throws, quoting the header without its padding; `at` adds where parsing stopped.
  [[noreturn]] void fail(const std::string& why, bool at = true) const {
    std::string_view text = m_s;
    while (!text.empty() && (text.back() == ' ' || text.back() == '\n')) text.remove_suffix(1);
    throw IOError(m_what + ": bad .npy header (" + why + (at ? " at character " + std::to_string(m_i) : "") +
                  "): " + printable(text));
  }
  char peek() const { return m_i < m_s.size() ? m_s[m_i] : '\0'; }
  void skip_space() {
    while (m_i < m_s.size() && (m_s[m_i] == ' ' || m_s[m_i] == '\t' || m_s[m_i] == '\n' || m_s[m_i] == '\r')) {
      ++m_i;
    }
  }
  void expect(char c) {
    skip_space();
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++m_i;
  }
  std::string string_literal() {
    skip_space();
    const char q = peek();
    if (q != '\'' && q != '"') fail("expected a quoted string");
    const std::size_t start = ++m_i;
    while (m_i < m_s.size() && m_s[m_i] != q) {
      if (m_s[m_i] == '\\') fail("escapes are not expected in a header string");
      ++m_i;
    }
    if (m_i == m_s.size()) fail("unterminated string");
    return std::string(m_s.substr(start, m_i++ - start));
  }
  bool boolean() {
    if (m_s.substr(m_i, 4) == "True") {
      m_i += 4;
      return true;
    }
    if (m_s.substr(m_i, 5) == "False") {
      m_i += 5;
      return false;
    }
    fail("fortran_order must be True or False");
  }
  std::uint64_t integer() {
    skip_space();
    if (peek() < '0' || peek() > '9') fail("expected a non-negative integer in the shape");
    std::uint64_t v = 0;
    while (peek() >= '0' && peek() <= '9') {
      const auto d = static_cast<std::uint64_t>(peek() - '0');
      if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10) fail("shape entry too large");
      v = v * 10 + d;
      ++m_i;
    }
    if (peek() == 'L' || peek() == 'l') ++m_i;  // written by Python 2
    return v;
  }
  std::vector<std::uint64_t> tuple_of_ints() {
    std::vector<std::uint64_t> dims;
    if (peek() != '(') fail("shape must be a tuple");
    ++m_i;
    skip_space();
    if (peek() == ')') {
      ++m_i;
      return dims;
    }
    while (true) {
      dims.push_back(integer());
      skip_space();
      if (peek() == ')') {
        // Python's (5) is the integer 5, not a tuple: a one-element tuple needs its comma.
        if (dims.size() == 1) fail("a one-dimensional shape needs a trailing comma, as in (5,)");
        ++m_i;
        return dims;
      }
      if (peek() != ',') fail("expected ',' or ')' in the shape");
      ++m_i;
      skip_space();
      if (peek() == ')') {
        ++m_i;
        return dims;
      }
    }
  }
  void skip_bracketed() {
    int depth = 0;
    for (; m_i < m_s.size(); ++m_i) {
      if (m_s[m_i] == '[' || m_s[m_i] == '(') ++depth;
      if (m_s[m_i] == ']' || m_s[m_i] == ')') --depth;
      if (depth == 0) {
        ++m_i;
        return;
      }
    }
    fail("unterminated list");
  }

  std::string_view m_s;
  const std::string& m_what;
  std::size_t m_i = 0;
};

/// Copies a Fortran-order (first index fastest) array into C order (last index fastest).
template <class T>
void fortran_to_c(const char* src, T* dst, const Shape& shape) {
  const std::size_t n = shape.ndim();
  std::size_t fstride[Shape::max_dims];
  std::size_t stride = 1;
  for (std::size_t k = 0; k < n; ++k) {
    fstride[k] = stride;
    stride *= shape[k];
  }
  std::size_t index[Shape::max_dims] = {};
  std::size_t from = 0;  // the element's offset in src, in elements
  const std::size_t numel = shape.numel();
  for (std::size_t to = 0; to < numel; ++to) {
    std::memcpy(&dst[to], src + from * sizeof(T), sizeof(T));
    for (std::size_t k = n; k-- > 0;) {  // advance the C-order multi-index
      if (++index[k] < shape[k]) {
        from += fstride[k];
        break;
      }
      from -= (shape[k] - 1) * fstride[k];
      index[k] = 0;
    }
  }
}

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

/// The whole of member `index`, CRC checked.
std::string read_member(zip_t* archive, zip_uint64_t index, const zip_stat_t& st, const std::string& what) {
  ZipFile file{zip_fopen_index(archive, index, 0)};
  if (!file) throw IOError(what + ": cannot open the member: " + zip_strerror(archive));

  // Trust the directory's size only as far as the compressed data could expand (deflate tops out
  // near 1032:1), so a lying size cannot make us allocate terabytes; the string grows if need be.
  std::string bytes;
  if ((st.valid & ZIP_STAT_SIZE) && (st.valid & ZIP_STAT_COMP_SIZE)) {
    const std::uint64_t bound = st.comp_size * 1100 + 4096;
    bytes.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(st.size, bound)));
  }
  char spill[1 << 16];  // for reads past the reserved size: an unknown or understated size
  while (true) {
    // Read into the reserved room while there is some; libzip checks the CRC when a read reaches
    // the end of the member, so keep reading until it returns 0.
    const std::size_t have = bytes.size();
    const std::size_t room = bytes.capacity() - have;
    zip_int64_t n;
    if (room > 0) {
      bytes.resize(have + room);  // within capacity: no reallocation
      n = zip_fread(file.get(), bytes.data() + have, room);
      bytes.resize(have + static_cast<std::size_t>(std::max<zip_int64_t>(n, 0)));
    } else {
      n = zip_fread(file.get(), spill, sizeof spill);
      if (n > 0) bytes.append(spill, static_cast<std::size_t>(n));
    }
    if (n < 0) {
      const int code = zip_error_code_zip(zip_file_get_error(file.get()));
      std::string why = zip_file_strerror(file.get());
      if (code == ZIP_ER_CRC) why += ": the member's data is corrupt";
      throw IOError(what + ": cannot read the member: " + why);
    }
    if (n == 0) break;
  }
  if ((st.valid & ZIP_STAT_SIZE) && bytes.size() != st.size) {
    throw IOError(what + ": the member holds " + std::to_string(bytes.size()) + " bytes but the zip directory says " +
                  std::to_string(st.size) + ": the archive is corrupt");
  }
  return bytes;
}

/// Removes the file on scope exit unless released (the temporary of an atomic save).
class TempFile {
 public:
  explicit TempFile(fs::path p) : m_path(std::move(p)) {}
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (!m_released) {
      std::error_code ignored;
      fs::remove(m_path, ignored);
    }
  }
  const fs::path& path() const { return m_path; }
  void release() { m_released = true; }

 private:
  fs::path m_path;
  bool m_released = false;
};

/// fsync a file or directory; returns errno, or 0.
int sync_path(const fs::path& p, bool directory) {
  const int fd = ::open(p.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0) return errno;
  const int rc = ::fsync(fd);
  const int err = rc == 0 ? 0 : errno;
  ::close(fd);
  return err;
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
      throw IOError(where + ": key " + quoted(key) + ": " + why);
    }
    zip_error_fini(&error);
    const std::string member = key + ".npy";
    const zip_int64_t index = zip_file_add(archive.get(), member.c_str(), source, ZIP_FL_ENC_GUESS);
    if (index < 0) {
      zip_source_free(source);  // not taken over by a failed zip_file_add
      throw IOError(where + ": key " + quoted(key) + ": cannot add the member: " + zip_strerror(archive.get()));
    }
    if (zip_set_file_compression(archive.get(), static_cast<zip_uint64_t>(index), ZIP_CM_STORE, 0) != 0) {
      throw IOError(where + ": key " + quoted(key) + ": " + zip_strerror(archive.get()));
    }
  }
  // zip_close writes everything; on failure the archive stays open (discarded by the handle) and
  // libzip removes its own partial output.
  if (zip_close(archive.get()) != 0) {
    throw IOError(where + ": writing the archive failed: " + zip_strerror(archive.get()));
  }
  archive.release();  // zip_close freed it
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// public
// ---------------------------------------------------------------------------------------------------

std::string encode_npy(const Tensor& tensor) {
  if (!tensor.defined()) throw ValueError("encode_npy: the tensor is undefined");
  std::string out = npy_header(tensor.shape(), tensor.dtype());
  const std::size_t n_bytes = tensor.numel() * dtype_size(tensor.dtype());
  if (n_bytes > 0) out.append(static_cast<const char*>(raw_data(tensor)), n_bytes);
  return out;
}

Tensor decode_npy(const std::string& bytes, const std::string& what) {
  // ---- magic, version, header length ----
  if (bytes.size() < npy_magic.size() + 2 || std::string_view(bytes).substr(0, npy_magic.size()) != npy_magic) {
    throw IOError(what + ": not an .npy array (it does not start with the magic string \\x93NUMPY; starts with \"" +
                  printable(std::string_view(bytes).substr(0, 8)) + "\")");
  }
  const auto major = static_cast<unsigned char>(bytes[6]);
  const auto minor = static_cast<unsigned char>(bytes[7]);
  if ((major != 1 && major != 2 && major != 3) || minor != 0) {
    throw IOError(what + ": unsupported .npy format version " + std::to_string(major) + "." + std::to_string(minor) +
                  " (rewind reads 1.0, 2.0 and 3.0)");
  }
  const std::size_t len_size = major == 1 ? 2 : 4;  // uint16 in 1.0, uint32 in 2.0 and 3.0
  const std::size_t prefix = npy_magic.size() + 2 + len_size;
  if (bytes.size() < prefix) throw IOError(what + ": .npy array truncated inside its header length");
  std::size_t header_len = 0;
  for (std::size_t i = 0; i < len_size; ++i) {
    header_len |= static_cast<std::size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
  }
  if (header_len > bytes.size() - prefix) {
    throw IOError(what + ": .npy header length " + std::to_string(header_len) + " runs past the end of the " +
                  std::to_string(bytes.size()) + "-byte array (truncated?)");
  }

  // ---- header ----
  const NpyHeader h = HeaderParser(std::string_view(bytes).substr(prefix, header_len), what).parse();
  const bool wide = h.descr.size() >= 2 && h.descr.substr(h.descr.size() - 1) == "8";
  const std::string fix = std::string("; rewind reads only float32 '<f4' and float64 '<f8' (convert in NumPy with ") +
                          "a.astype('" + (wide ? "<f8" : "<f4") + "'), or leave this key out)";
  if (h.descr_is_structured) throw IOError(what + ": unsupported dtype: a structured array" + fix);
  Dtype dtype;
  if (h.descr == "<f4") {
    dtype = Dtype::f32;
  } else if (h.descr == "<f8") {
    dtype = Dtype::f64;
  } else if (h.descr == ">f4" || h.descr == ">f8") {
    throw IOError(what + ": unsupported dtype '" + h.descr + "' (big-endian)" + fix);
  } else {
    throw IOError(what + ": unsupported dtype '" + printable(h.descr) + "'" + fix);
  }
  if (h.shape.size() > Shape::max_dims) {
    throw IOError(what + ": " + std::to_string(h.shape.size()) + " dimensions; rewind tensors have at most " +
                  std::to_string(Shape::max_dims));
  }
  const Shape shape(h.shape.begin(), h.shape.end());

  // ---- data: exactly numel elements ----
  const std::size_t item = dtype_size(dtype);
  std::size_t numel = 0;
  if (std::find(h.shape.begin(), h.shape.end(), 0) == h.shape.end()) {
    numel = 1;
    for (const std::uint64_t d : h.shape) {
      if (d > std::numeric_limits<std::size_t>::max() / item / numel) {
        throw IOError(what + ": shape " + shape.str() + " is too large to address");
      }
      numel *= d;
    }
  }
  const std::size_t n_bytes = numel * item;
  const std::size_t have = bytes.size() - prefix - header_len;
  if (have != n_bytes) {
    throw IOError(what + ": data is " + std::to_string(have) + " bytes, but shape " + shape.str() + " of " +
                  dtype_name(dtype) + " needs " + std::to_string(n_bytes) + (have < n_bytes ? " (truncated)" : ""));
  }

  Tensor t = Tensor::zeros(shape, dtype);
  if (n_bytes == 0) return t;
  const char* src = bytes.data() + prefix + header_len;
  if (!h.fortran_order || shape.ndim() <= 1) {
    std::memcpy(dtype == Dtype::f32 ? static_cast<void*>(t.data<float>()) : static_cast<void*>(t.data<double>()),
                src, n_bytes);
  } else if (dtype == Dtype::f32) {
    fortran_to_c(src, t.data<float>(), shape);
  } else {
    fortran_to_c(src, t.data<double>(), shape);
  }
  return t;
}

void save_npz(const std::string& path, const NamedTensors& tensors) {
  const std::string where = "save_npz: " + quoted(path);

  // ---- arguments, before touching any file ----
  std::set<std::string> keys;
  for (const auto& [key, tensor] : tensors) {
    if (key.empty()) throw ValueError(where + ": an empty key (NumPy could not name its array)");
    if (key.find('\0') != std::string::npos) throw ValueError(where + ": key " + quoted(printable(key)) + " contains '\\0'");
    if (!keys.insert(key).second) throw ValueError(where + ": key " + quoted(key) + " appears twice");
    if (!tensor.defined()) throw ValueError(where + ": key " + quoted(key) + ": the tensor is undefined");
  }
  const fs::path target(path);
  if (path.empty() || !target.has_filename()) throw IOError(where + ": not a file path");

  // ---- write a temporary next to the target, then rename it over the target ----
  // Same directory, so the rename is atomic (one file system); hidden and unique to this call.
  static std::atomic<unsigned> counter{0};
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw IOError(where + ": directory " + quoted(dir.string()) + " does not exist");
  std::string tmp_name = ".";  // appended piecewise: GCC 12 warns falsely (-Wrestrict) on "." + string
  tmp_name += target.filename().string();
  tmp_name += ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
  TempFile tmp(dir / tmp_name);

  write_archive(tmp.path(), tensors, where);
  // On disk before it replaces the old file, so a crash leaves the old file or the new, never a torn one.
  if (const int err = sync_path(tmp.path(), false)) {
    throw IOError(where + ": cannot flush " + quoted(tmp.path().string()) + ": " + system_message(err));
  }
  if (::rename(tmp.path().c_str(), target.c_str()) != 0) {
    throw IOError(where + ": cannot replace the file: " + system_message(errno));
  }
  tmp.release();
  sync_path(dir, true);  // best effort: makes the rename itself durable
}

NamedTensors load_npz(const std::string& path) {
  const std::string where = "load_npz: " + quoted(path);
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (status.type() == fs::file_type::not_found) throw IOError(where + ": no such file");
  if (status.type() == fs::file_type::directory) throw IOError(where + ": is a directory, not an .npz file");

  int code = 0;
  ZipArchive archive{zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &code)};
  if (!archive) {
    std::string why = libzip_message(code);
    if (code == ZIP_ER_NOZIP) {
      why += ": an .npz is a zip archive, and a truncated one lacks the directory at its end";
    } else if (code == ZIP_ER_INCONS) {
      why += ": the archive is corrupt";
    }
    throw IOError(where + ": cannot open: " + why);
  }

  NamedTensors out;
  std::set<std::string> keys;
  const zip_int64_t n = zip_get_num_entries(archive.get(), 0);
  for (zip_int64_t i = 0; i < n; ++i) {
    const auto index = static_cast<zip_uint64_t>(i);
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(archive.get(), index, 0, &st) != 0 || !(st.valid & ZIP_STAT_NAME)) {
      throw IOError(where + ": member " + std::to_string(i) + ": " + zip_strerror(archive.get()));
    }
    const std::string name = st.name;
    constexpr std::string_view ext = ".npy";
    if (name.size() < ext.size() || name.compare(name.size() - ext.size(), ext.size(), ext) != 0) {
      throw IOError(where + ": member " + quoted(printable(name)) +
                    " is not an .npy array (an .npz holds one <key>.npy member per array)");
    }
    const std::string key = name.substr(0, name.size() - ext.size());
    const std::string what = where + ": key " + quoted(key);
    if (!keys.insert(key).second) throw IOError(what + ": appears twice in the archive");
    Tensor t = decode_npy(read_member(archive.get(), index, st, what), what);
    t.set_name(key);
    out.emplace_back(key, std::move(t));
  }
  return out;
}

}  // namespace rwd
