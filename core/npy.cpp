// rewind/core/npy.cpp — the .npy codec: one array's header and raw little-endian bytes, encoded and
// parsed by hand (a fixed header and the data as it is in memory). The zip archive around the members
// of an .npz is core/npz.cpp's.
#include "npy.hpp"

#include "detail/impl.hpp"  // empty_tensor
#include "detail/npy.hpp"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace rwd {

// The .npy data is the tensor's bytes as they are in memory, which is the file's byte order only here.
static_assert(std::endian::native == std::endian::little, "npy.cpp copies raw little-endian bytes");

namespace {

constexpr std::string_view npy_magic{"\x93NUMPY", 6};
constexpr std::size_t npy_align = 64;               // NumPy's ARRAY_ALIGN: data starts on this boundary

/// The longest .npy header read. NumPy's own np.load refuses headers past 10,000 bytes (max_header_size);
/// rewind's dtypes and at most 8 dimensions need under 200. The cap bounds what a hostile header can cost.
constexpr std::size_t npy_max_header = 1 << 16;

using detail::printable;

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

}  // namespace

// ---------------------------------------------------------------------------------------------------
// .npy: writing
// ---------------------------------------------------------------------------------------------------

/// Text for a message: printable ASCII as is, anything else as \xNN, cut after `max` characters.
std::string detail::printable(std::string_view s, std::size_t max) {
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

/// Magic, version 1.0, header length and header, exactly as numpy.lib.format writes them.
std::string detail::npy_header(const Shape& shape, Dtype dtype) {
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

const void* detail::raw_data(const Tensor& t) {
  return t.dtype() == Dtype::f32 ? static_cast<const void*>(t.data<float>())
                                 : static_cast<const void*>(t.data<double>());
}

// ---------------------------------------------------------------------------------------------------
// .npy: reading, from any source of bytes (a string for decode_npy, a zip member for load_npz), the
// header first and then exactly the bytes the header's shape and dtype need, straight into the tensor
// ---------------------------------------------------------------------------------------------------

/// Reads and checks the magic, version and header from the start of `read`; `total` is the size of the
/// whole .npy if known (then a header length past it is refused before anything is read).
detail::NpyLayout detail::read_npy_header(const ReadFn& read, std::optional<std::uint64_t> total, const std::string& what,
                                          bool integers) {
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
                          "a.astype('" + (wide ? "<f8" : "<f4") + "'), or leave this key out" +
                          (integers ? ")" : "; integer and boolean arrays load as indices with load_npz_all)");
  if (h.descr_is_structured) throw IOError(what + ": unsupported dtype: a structured array" + fix);
  NpyLayout out;
  out.descr = h.descr;
  // Integers and booleans, little-endian (or byte-sized, '|'): '<i1' … '<i8', '<u1' … '<u8', '|b1'.
  const bool int_like = h.descr.size() == 3 && (h.descr[0] == '<' || h.descr[0] == '|') &&
                        (h.descr[1] == 'i' || h.descr[1] == 'u' || h.descr[1] == 'b') &&
                        (h.descr[2] == '1' || h.descr[2] == '2' || h.descr[2] == '4' || h.descr[2] == '8') &&
                        (h.descr[1] != 'b' || h.descr[2] == '1') && (h.descr[0] == '<' || h.descr[2] == '1');
  if (integers && int_like) {
    out.int_bytes = static_cast<std::size_t>(h.descr[2] - '0');
    out.int_signed = h.descr[1] == 'i';
    out.boolean = h.descr[1] == 'b';
  } else if (h.descr == "<f4") {
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
  const std::size_t item = out.int_bytes ? out.int_bytes : dtype_size(out.dtype);
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
namespace {

// Where each element of a Fortran-order array goes in C order: the file's element f has multi-index
// (i0, i1, …) with i0 fastest, and goes to C offset Σ ik · cstride[k]. at() is the current element's
// C offset (in elements); next() moves to the file's next element.
class FortranOrder {
 public:
  explicit FortranOrder(const Shape& shape) : m_shape(shape) {
    std::size_t stride = 1;
    for (std::size_t k = shape.ndim(); k-- > 0;) {
      m_cstride[k] = stride;
      stride *= shape[k];
    }
  }
  std::size_t at() const { return m_to; }
  void next() {
    for (std::size_t k = 0; k < m_shape.ndim(); ++k) {
      if (++m_index[k] < m_shape[k]) {
        m_to += m_cstride[k];
        return;
      }
      m_to -= (m_shape[k] - 1) * m_cstride[k];
      m_index[k] = 0;
    }
  }

 private:
  const Shape& m_shape;
  std::size_t m_cstride[Shape::max_dims] = {};
  std::size_t m_index[Shape::max_dims] = {};
  std::size_t m_to = 0;
};

}  // namespace

Tensor detail::read_npy_data(const ReadFn& read, const NpyLayout& layout, const std::string& what) {
  const std::size_t n_bytes = layout.data_bytes;
  if (n_bytes == 0) return Tensor::zeros(layout.shape, layout.dtype);
  // Not zero-filled: every element is read into place or the load throws, and a member whose stream
  // ends early (the zip directory lied about its size) then costs only the pages it wrote, not the
  // whole claimed size.
  Tensor t = detail::empty_tensor(layout.shape, layout.dtype);
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
  // Fortran order: the elements in file order, chunk by chunk, each to its C offset.
  const std::size_t item = dtype_size(layout.dtype);
  FortranOrder order(shape);
  char chunk[1 << 16];
  std::size_t done = 0;
  while (done < n_bytes) {
    const std::size_t want = std::min(sizeof chunk, n_bytes - done);  // a multiple of 8, so of the item size
    const std::size_t got = read(chunk, want);
    if (got < want) throw truncated(done + got);
    for (std::size_t at = 0; at < got; at += item, order.next()) std::memcpy(dst + order.at() * item, chunk + at, item);
    done += got;
  }
  return t;
}

std::string detail::element_name(const NpyLayout& layout) {
  return layout.int_bytes ? "'" + layout.descr + "'" : dtype_name(layout.dtype);
}

std::vector<std::int64_t> detail::read_npy_integers(const ReadFn& read, const NpyLayout& layout, const std::string& what) {
  const std::size_t item = layout.int_bytes, n_bytes = layout.data_bytes, n = item ? n_bytes / item : 0;
  // The file's bytes (bounded by the member limit), then converted. Not zero-filled (new char[], not a
  // vector): a stream that ends before the claimed size costs only the pages it wrote.
  const std::unique_ptr<char[]> raw(new (std::nothrow) char[n_bytes ? n_bytes : 1]);
  if (!raw)
    throw MemoryError(what + ": cannot allocate " + std::to_string(n_bytes) + " bytes for the " + element_name(layout) +
                      " array of shape " + layout.shape.str());
  const std::size_t got = n_bytes ? read(raw.get(), n_bytes) : 0;
  if (got < n_bytes) {
    throw IOError(what + ": data is " + std::to_string(got) + " bytes, but shape " + layout.shape.str() + " of " +
                  element_name(layout) + " needs " + std::to_string(n_bytes) + " (truncated)");
  }
  // Element f of the file, as an int64 (little-endian bytes; this library runs on little-endian hosts).
  auto value = [&](std::size_t f) -> std::int64_t {
    const char* p = raw.get() + f * item;
    std::uint64_t u = 0;
    std::memcpy(&u, p, item);
    if (layout.boolean) return u != 0;
    if (layout.int_signed && item < 8 && (u >> (8 * item - 1)) & 1) u |= ~std::uint64_t{0} << (8 * item);  // sign-extend
    if (!layout.int_signed && u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      throw IOError(what + ": value " + std::to_string(u) + " at element " + std::to_string(f) + " of the '" +
                    layout.descr + "' array does not fit an int64 index");
    return static_cast<std::int64_t>(u);
  };
  std::vector<std::int64_t> out(n);
  const Shape& shape = layout.shape;
  if (!layout.fortran_order || shape.ndim() <= 1) {
    for (std::size_t f = 0; f < n; ++f) out[f] = value(f);
    return out;
  }
  FortranOrder order(shape);
  for (std::size_t f = 0; f < n; ++f, order.next()) out[order.at()] = value(f);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// public
// ---------------------------------------------------------------------------------------------------

std::string encode_npy(const Tensor& tensor) {
  if (!tensor.defined()) throw ValueError("encode_npy: the tensor is undefined");
  std::string out = detail::npy_header(tensor.shape(), tensor.dtype());
  const std::size_t n_bytes = tensor.numel() * dtype_size(tensor.dtype());
  if (n_bytes > 0) out.append(static_cast<const char*>(detail::raw_data(tensor)), n_bytes);
  return out;
}

Tensor decode_npy(const std::string& bytes, const std::string& what) {
  std::size_t at = 0;
  const detail::ReadFn read = [&](char* dst, std::size_t n) {
    const std::size_t got = std::min(n, bytes.size() - at);
    if (got > 0) std::memcpy(dst, bytes.data() + at, got);
    at += got;
    return got;
  };
  const detail::NpyLayout layout = detail::read_npy_header(read, bytes.size(), what);
  const std::size_t have = bytes.size() - layout.header_bytes;
  if (have != layout.data_bytes) {
    throw IOError(what + ": data is " + std::to_string(have) + " bytes, but shape " + layout.shape.str() + " of " +
                  dtype_name(layout.dtype) + " needs " + std::to_string(layout.data_bytes) +
                  (have < layout.data_bytes ? " (truncated)" : ""));
  }
  return detail::read_npy_data(read, layout, what);
}

}  // namespace rwd
