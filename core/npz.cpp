// rewind/core/npz.cpp — .npz files: the .npy members encoded and parsed here, the zip archive by libzip.
//
// The .npy side is small enough to write by hand (a fixed header and raw little-endian bytes). The zip
// side is libzip's: it reads stored and deflated members, checks each member's CRC, handles zip64
// (which np.savez always writes) and writes archives; none of that is worth redoing.
#include "npz.hpp"

#include "atomic_file.hpp"

#include <zip.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
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

// ---------------------------------------------------------------------------------------------------
// .npy: reading, from any source of bytes (a string for decode_npy, a zip member for load_npz), the
// header first and then exactly the bytes the header's shape and dtype need, straight into the tensor
// ---------------------------------------------------------------------------------------------------

/// Reads up to `n` bytes into `dst` and returns how many: fewer only at the end of the source. Throws IOError.
using ReadFn = std::function<std::size_t(char* dst, std::size_t n)>;

/// The longest .npy header read. NumPy's own np.load refuses headers past 10,000 bytes (max_header_size);
/// rewind's dtypes and at most 8 dimensions need under 200. The cap bounds what a hostile header can cost.
constexpr std::size_t npy_max_header = 1 << 16;

/// What an .npy header says: the dtype, shape and order, and where the data starts and how long it is.
struct NpyLayout {
  Dtype dtype = Dtype::f32;
  Shape shape;
  bool fortran_order = false;
  std::size_t header_bytes = 0;  // magic, version, length and header: the data's offset
  std::size_t data_bytes = 0;    // numel × item size, overflow-checked
};

/// Reads and checks the magic, version and header from the start of `read`; `total` is the size of the
/// whole .npy if known (then a header length past it is refused before anything is read).
NpyLayout read_npy_header(const ReadFn& read, std::optional<std::uint64_t> total, const std::string& what) {
  // ---- magic, version, header length ----
  char start[12];
  std::size_t got = read(start, 8);
  if (got < npy_magic.size() + 2 || std::string_view(start, npy_magic.size()) != npy_magic) {
    throw IOError(what + ": not an .npy array (it does not start with the magic string \\x93NUMPY; starts with \"" +
                  printable(std::string_view(start, got)) + "\")");
  }
  const auto major = static_cast<unsigned char>(start[6]);
  const auto minor = static_cast<unsigned char>(start[7]);
  if ((major != 1 && major != 2 && major != 3) || minor != 0) {
    throw IOError(what + ": unsupported .npy format version " + std::to_string(major) + "." + std::to_string(minor) +
                  " (rewind reads 1.0, 2.0 and 3.0)");
  }
  const std::size_t len_size = major == 1 ? 2 : 4;  // uint16 in 1.0, uint32 in 2.0 and 3.0
  const std::size_t prefix = npy_magic.size() + 2 + len_size;
  if (read(start + 8, len_size) < len_size) throw IOError(what + ": .npy array truncated inside its header length");
  std::size_t header_len = 0;
  for (std::size_t i = 0; i < len_size; ++i) {
    header_len |= static_cast<std::size_t>(static_cast<unsigned char>(start[8 + i])) << (8 * i);
  }
  if (total && header_len > *total - std::min<std::uint64_t>(*total, prefix)) {
    throw IOError(what + ": .npy header length " + std::to_string(header_len) + " runs past the end of the " +
                  std::to_string(*total) + "-byte array (truncated?)");
  }
  if (header_len > npy_max_header) {
    throw IOError(what + ": .npy header length " + std::to_string(header_len) + " is more than the " +
                  std::to_string(npy_max_header) + " bytes rewind reads (a float array's header needs under 200)");
  }
  std::string text(header_len, '\0');
  if (read(text.data(), header_len) < header_len) {
    throw IOError(what + ": .npy header length " + std::to_string(header_len) + " runs past the end of the array (truncated?)");
  }

  // ---- header ----
  const NpyHeader h = HeaderParser(text, what).parse();
  const bool wide = h.descr.size() >= 2 && h.descr.substr(h.descr.size() - 1) == "8";
  const std::string fix = std::string("; rewind reads only float32 '<f4' and float64 '<f8' (convert in NumPy with ") +
                          "a.astype('" + (wide ? "<f8" : "<f4") + "'), or leave this key out)";
  if (h.descr_is_structured) throw IOError(what + ": unsupported dtype: a structured array" + fix);
  NpyLayout out;
  if (h.descr == "<f4") {
    out.dtype = Dtype::f32;
  } else if (h.descr == "<f8") {
    out.dtype = Dtype::f64;
  } else if (h.descr == ">f4" || h.descr == ">f8") {
    throw IOError(what + ": unsupported dtype '" + h.descr + "' (big-endian)" + fix);
  } else {
    throw IOError(what + ": unsupported dtype '" + printable(h.descr) + "'" + fix);
  }
  if (h.shape.size() > Shape::max_dims) {
    throw IOError(what + ": " + std::to_string(h.shape.size()) + " dimensions; rewind tensors have at most " +
                  std::to_string(Shape::max_dims));
  }
  // The byte count, checked here whatever Shape checks: the product of the nonzero dimensions times the
  // item size must fit a signed 64-bit offset (array strides are signed), zero dimensions included —
  // (0, 2^62, 2^62) holds no element, but its strides would still overflow.
  const std::size_t item = dtype_size(out.dtype);
  const std::uint64_t max_bytes = static_cast<std::uint64_t>(std::numeric_limits<std::ptrdiff_t>::max());
  std::uint64_t span = item;  // bytes spanned by the nonzero dimensions
  bool has_zero = false;
  std::string repr = "(";
  for (std::size_t i = 0; i < h.shape.size(); ++i) repr += (i ? ", " : "") + std::to_string(h.shape[i]);
  repr += h.shape.size() == 1 ? ",)" : ")";
  for (const std::uint64_t d : h.shape) {
    if (d == 0) {
      has_zero = true;
      continue;
    }
    if (d > max_bytes / span) throw IOError(what + ": shape " + repr + " is too large to address");
    span *= d;
  }
  try {
    out.shape = Shape(h.shape.begin(), h.shape.end());  // Shape's own limit (8 bytes an element) is stricter
  } catch (const ShapeError& e) {
    throw IOError(what + ": shape " + repr + " is too large to address (" + e.what() + ")");
  }
  out.fortran_order = h.fortran_order;
  out.header_bytes = prefix + header_len;
  out.data_bytes = has_zero ? 0 : static_cast<std::size_t>(span);
  return out;
}

/// Reads exactly `layout.data_bytes` from `read` into a new tensor (reordering Fortran order to C order
/// on the way, in chunks, so no second full-size buffer is ever held).
Tensor read_npy_data(const ReadFn& read, const NpyLayout& layout, const std::string& what) {
  Tensor t = Tensor::zeros(layout.shape, layout.dtype);
  const std::size_t n_bytes = layout.data_bytes;
  if (n_bytes == 0) return t;
  char* dst = layout.dtype == Dtype::f32 ? reinterpret_cast<char*>(t.data<float>()) : reinterpret_cast<char*>(t.data<double>());
  auto truncated = [&](std::size_t have) {
    return IOError(what + ": data is " + std::to_string(have) + " bytes, but shape " + layout.shape.str() + " of " +
                   dtype_name(layout.dtype) + " needs " + std::to_string(n_bytes) + " (truncated)");
  };
  const Shape& shape = layout.shape;
  if (!layout.fortran_order || shape.ndim() <= 1) {
    const std::size_t got = read(dst, n_bytes);
    if (got < n_bytes) throw truncated(got);
    return t;
  }
  // Fortran order: the file's element f has multi-index (i0, i1, …) with i0 fastest; it goes to C offset
  // Σ ik · cstride[k]. Walk the multi-index in file order, chunk by chunk.
  const std::size_t item = dtype_size(layout.dtype);
  const std::size_t n = shape.ndim();
  std::size_t cstride[Shape::max_dims];
  std::size_t stride = 1;
  for (std::size_t k = n; k-- > 0;) {
    cstride[k] = stride;
    stride *= shape[k];
  }
  std::size_t index[Shape::max_dims] = {};
  std::size_t to = 0;  // the element's C offset, in elements
  char chunk[1 << 16];
  std::size_t done = 0;
  while (done < n_bytes) {
    const std::size_t want = std::min(sizeof chunk, n_bytes - done);  // a multiple of 8, so of the item size
    const std::size_t got = read(chunk, want);
    if (got < want) throw truncated(done + got);
    for (std::size_t at = 0; at < got; at += item) {
      std::memcpy(dst + to * item, chunk + at, item);
      for (std::size_t k = 0; k < n; ++k) {  // advance the Fortran-order multi-index
        if (++index[k] < shape[k]) {
          to += cstride[k];
          break;
        }
        to -= (shape[k] - 1) * cstride[k];
        index[k] = 0;
      }
    }
    done += got;
  }
  return t;
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
      throw IOError(where + ": key " + quoted(printable(key)) + ": " + why);
    }
    zip_error_fini(&error);
    const std::string member = key + ".npy";
    // ZIP_FL_ENC_UTF_8: the name is UTF-8 (save_npz checked it), so libzip sets the archive's UTF-8
    // flag for a non-ASCII name and Python's zipfile (np.load) reads it as written, not as CP437.
    const zip_int64_t index = zip_file_add(archive.get(), member.c_str(), source, ZIP_FL_ENC_UTF_8);
    if (index < 0) {
      zip_source_free(source);  // not taken over by a failed zip_file_add
      throw IOError(where + ": key " + quoted(printable(key)) + ": cannot add the member: " + zip_strerror(archive.get()));
    }
    if (zip_set_file_compression(archive.get(), static_cast<zip_uint64_t>(index), ZIP_CM_STORE, 0) != 0) {
      throw IOError(where + ": key " + quoted(printable(key)) + ": " + zip_strerror(archive.get()));
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
  const std::string shown = quoted(printable(key, 60));
  if (key.find('\0') != std::string::npos) throw ValueError(where + ": key " + shown + " contains '\\0'");
  if (key.size() > max_key_bytes) {
    throw ValueError(where + ": key " + shown + " is " + std::to_string(key.size()) + " bytes; a zip member name " +
                     "holds at most 65535, so a key (stored as <key>.npy) at most " + std::to_string(max_key_bytes));
  }
  if (!valid_utf8(key)) {
    throw ValueError(where + ": key " + shown + " is not valid UTF-8 (zip member names are UTF-8 text, and " +
                     "other bytes would not load back as the same key)");
  }
}

std::atomic<std::uint64_t> member_limit{std::uint64_t{16} << 30};

/// Member `index` of the archive as a tensor: the .npy header first, then exactly the bytes it needs.
Tensor read_member(zip_t* archive, zip_uint64_t index, const zip_stat_t& st, const std::string& what) {
  // What the zip directory says, checked against the limit and what the compressed bytes can hold,
  // before anything is inflated.
  std::optional<std::uint64_t> size;
  if (st.valid & ZIP_STAT_SIZE) size = st.size;
  const std::uint64_t limit = member_limit.load(std::memory_order_relaxed);
  auto over_limit = [&](std::uint64_t bytes, const char* by) {
    return IOError(what + ": the member is " + std::to_string(bytes) + " bytes " + by + ", more than the limit of " +
                   std::to_string(limit) + " bytes (rwd::set_npz_member_limit raises it)");
  };
  if (size && *size > limit) throw over_limit(*size, "by the zip directory");
  if (size && (st.valid & ZIP_STAT_COMP_SIZE) && (st.valid & ZIP_STAT_COMP_METHOD)) {
    // A stored member is its compressed bytes; deflate expands at most 1032:1 (a 258-byte match per
    // 2 bits), so a directory size past that is a lie.
    const std::uint64_t most = st.comp_method == ZIP_CM_STORE ? st.comp_size
                               : st.comp_method == ZIP_CM_DEFLATE
                                   ? (st.comp_size > (std::uint64_t{1} << 53) ? std::uint64_t(-1) : st.comp_size * 1100 + 4096)
                                   : std::uint64_t(-1);
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

  const NpyLayout layout = read_npy_header(read, size, what);
  const std::uint64_t need = layout.header_bytes + static_cast<std::uint64_t>(layout.data_bytes);
  if (need < layout.data_bytes || need > limit) throw over_limit(need, "by its .npy header");
  if (size && *size != need) {
    throw IOError(what + ": data is " + std::to_string(*size - layout.header_bytes) + " bytes, but shape " +
                  layout.shape.str() + " of " + dtype_name(layout.dtype) + " needs " + std::to_string(layout.data_bytes) +
                  (*size < need ? " (truncated)" : "") + " (by the zip directory's size of the member)");
  }
  Tensor t = read_npy_data(read, layout, what);
  // Nothing may follow the data. Reading on to the member's end is also when libzip checks its CRC.
  char extra;
  if (read(&extra, 1) != 0) {
    throw IOError(what + ": the member holds more than the " + std::to_string(need) +
                  " bytes its .npy header and the zip directory say: the archive is corrupt");
  }
  return t;
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

std::string encode_npy(const Tensor& tensor) {
  if (!tensor.defined()) throw ValueError("encode_npy: the tensor is undefined");
  std::string out = npy_header(tensor.shape(), tensor.dtype());
  const std::size_t n_bytes = tensor.numel() * dtype_size(tensor.dtype());
  if (n_bytes > 0) out.append(static_cast<const char*>(raw_data(tensor)), n_bytes);
  return out;
}

Tensor decode_npy(const std::string& bytes, const std::string& what) {
  std::size_t at = 0;
  const ReadFn read = [&](char* dst, std::size_t n) {
    const std::size_t got = std::min(n, bytes.size() - at);
    if (got > 0) std::memcpy(dst, bytes.data() + at, got);
    at += got;
    return got;
  };
  const NpyLayout layout = read_npy_header(read, bytes.size(), what);
  const std::size_t have = bytes.size() - layout.header_bytes;
  if (have != layout.data_bytes) {
    throw IOError(what + ": data is " + std::to_string(have) + " bytes, but shape " + layout.shape.str() + " of " +
                  dtype_name(layout.dtype) + " needs " + std::to_string(layout.data_bytes) +
                  (have < layout.data_bytes ? " (truncated)" : ""));
  }
  return read_npy_data(read, layout, what);
}

void save_npz(const std::string& path, const NamedTensors& tensors) {
  const std::string where = "save_npz: " + quoted(path);

  // ---- arguments, before touching any file ----
  std::set<std::string> keys;
  for (const auto& [key, tensor] : tensors) {
    check_key(key, where);
    if (!keys.insert(key).second) throw ValueError(where + ": key " + quoted(printable(key, 60)) + " appears twice");
    if (!tensor.defined()) throw ValueError(where + ": key " + quoted(printable(key, 60)) + ": the tensor is undefined");
  }
  write_atomically(path, where, [&](const std::string& tmp) { write_archive(tmp, tensors, where); });
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
    if (code == ZIP_ER_EXISTS) {
      // libzip's consistency check refuses an archive with a name twice ("File already exists").
      const std::string name = duplicate_member(path);
      constexpr std::string_view ext = ".npy";
      if (name.size() >= ext.size() && name.compare(name.size() - ext.size(), ext.size(), ext) == 0) {
        throw IOError(where + ": key " + quoted(printable(name.substr(0, name.size() - ext.size()))) +
                      ": appears twice in the archive");
      }
      if (!name.empty()) throw IOError(where + ": member " + quoted(printable(name)) + " appears twice in the archive");
    } else if (code == ZIP_ER_NOZIP) {
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
    // Names as libzip decodes them, like Python's zipfile: UTF-8 when flagged or valid as UTF-8, else
    // CP437. A key save_npz wrote (checked UTF-8) comes back byte for byte.
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
    const std::string what = where + ": key " + quoted(printable(key));
    if (!keys.insert(key).second) throw IOError(what + ": appears twice in the archive");
    Tensor t = read_member(archive.get(), index, st, what);
    t.set_name(key);
    out.emplace_back(key, std::move(t));
  }
  return out;
}

}  // namespace rwd
