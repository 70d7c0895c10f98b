// rewind/core/detail/npy.hpp — library-internal: the .npy codec's pieces that the .npz archive
// (core/npz.cpp) reads and writes its members with. Defined in core/npy.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "../tensor.hpp"

namespace rwd::detail {

/// Text for a message: printable ASCII as is, anything else as \xNN, cut after `max` characters.
std::string printable(std::string_view s, std::size_t max = 160);

/// Magic, version 1.0, header length and header, exactly as numpy.lib.format writes them.
std::string npy_header(const Shape& shape, Dtype dtype);

/// The tensor's storage as bytes (its float or double data).
const void* raw_data(const Tensor& t);

/// Reads up to `n` bytes into `dst` and returns how many: fewer only at the end of the source. Throws IOError.
using ReadFn = std::function<std::size_t(char* dst, std::size_t n)>;

/// What an .npy header says: the dtype, shape and order, and where the data starts and how long it is.
struct NpyLayout {
  Dtype dtype = Dtype::f32;
  /// An integer or boolean array (read_npy_header with integers = true): its item size in bytes,
  /// whether it is signed, whether it is '|b1'; int_bytes is 0 for a float array.
  std::size_t int_bytes = 0;
  bool int_signed = false, boolean = false;
  std::string descr;  // as the header spells it ('<f4', '<i8', '|b1', …)
  Shape shape;
  bool fortran_order = false;
  std::size_t header_bytes = 0;  // magic, version, length and header: the data's offset
  std::size_t data_bytes = 0;    // numel × item size, overflow-checked
};

/// Reads and checks the magic, version and header from the start of `read`; `total` is the size of the
/// whole .npy if known (then a header length past it is refused before anything is read).
NpyLayout read_npy_header(const ReadFn& read, std::optional<std::uint64_t> total, const std::string& what,
                          bool integers = false);

/// The element type of `layout` for messages: "float32", "float64", or the integer descr ('<i8').
std::string element_name(const NpyLayout& layout);

/// Reads exactly `layout.data_bytes` of an integer or boolean array (int_bytes ≠ 0) as int64 values,
/// row-major (a Fortran-order array reordered). A '<u8' value above 2^63 − 1 is an IOError naming it.
std::vector<std::int64_t> read_npy_integers(const ReadFn& read, const NpyLayout& layout, const std::string& what);

/// Reads exactly `layout.data_bytes` from `read` into a new tensor (reordering Fortran order to C order
/// on the way, in chunks, so no second full-size buffer is ever held).
Tensor read_npy_data(const ReadFn& read, const NpyLayout& layout, const std::string& what);

}  // namespace rwd::detail
