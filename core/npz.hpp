// rewind/core/npz.hpp — named tensors in and out of NumPy's .npz files.
//
//   save_npz("model.npz", {{"0.weight", W}, {"0.bias", b}});
//   for (auto& [key, t] : load_npz("model.npz")) …
//
//   >>> d = np.load("model.npz"); d["0.weight"]           # NumPy reads what rewind writes
//   >>> np.savez("w.npz", **{k: v.numpy() for k, v in model.state_dict().items()})   # and back
//
// The format. An .npz is a zip archive with one member `<key>.npy` per array; np.savez stores the
// members, np.savez_compressed deflates them. Each member is an .npy file:
//
//   "\x93NUMPY" major minor | header length (uint16 LE in v1.0, uint32 LE in v2.0/3.0) | header | data
//
// where the header is a Python dict literal, padded with spaces and ended by '\n' so that the data
// starts on a 64-byte boundary:  {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
//
// Writing: an uncompressed archive (like np.savez), members in the given order, NPY v1.0 (a header
// of at most 8 dimensions always fits its 16-bit length), '<f4' or '<f8', C order, and the header
// laid out byte for byte as NumPy 1.24 (Debian 12's) lays it out (a test compares with np.save's
// output). The write is atomic (core/atomic_file.hpp): the archive goes to a short-named temporary
// in the target's directory, `.rwd-tmp-<pid>-<8 hex>`, is flushed to disk, and is renamed over the
// target only once complete, so a failure at any point leaves the old file as it was (and removes the
// temporary); a target name of up to 255 bytes has room. Temporaries left by a killed process are
// removed by the next save into the same directory once that process is gone.
//
// Reading: stored or deflated members (np.savez and np.savez_compressed), NPY versions 1.0, 2.0 and
// 3.0, dtypes '<f4' → float32 and '<f8' → float64, C or Fortran order (Fortran-order arrays, which
// NumPy writes for a transposed array such as `W.T`, are reordered to C order), 0-d arrays, and
// zero-size dimensions. Everything is checked, and every failure is a rwd::IOError whose message
// names the file and, past the archive level, the key: a missing file, not a zip archive, a truncated
// archive, a member whose CRC does not match (corrupt data), a member that is not `<key>.npy`, a
// duplicate key, a bad magic string or header, data shorter or longer than the shape needs, and
// dtypes rewind has no tensor for, a member compressed otherwise than stored or deflated (bzip2, LZMA,
// zstd: their ratios have no bound that would expose a lying size before allocation), and a path
// that is not a regular file (a FIFO would block the open until a writer came).
//
// Memory. A member is read header first: the .npy header's shape and dtype give the exact byte count
// (overflow-checked), which must match the zip directory's size of the member, and no more than that
// is ever inflated, so a zip bomb (a few MB that inflate to gigabytes) costs no more than its honest
// size. The data is inflated straight into the tensor's storage, so loading an array of N bytes peaks
// at N bytes, not 2N; the storage is not zero-filled first, so a member whose data ends before the
// size its directory claims costs the pages it wrote, not the claimed size. A member larger than
// npz_member_limit() (16 GiB unless set_npz_member_limit changes it: more than any one parameter of a
// model trained on one machine, less than a hostile header could ask for) is refused before anything
// is allocated, as is a directory size that its compressed bytes cannot hold (deflate expands at most
// 1032:1) and an .npy header over 64 KiB.
//
// load_npz rejects rather than converts: big-endian ('>f4'), integers ('<i8', '<i4'), bool, float16,
// complex and structured arrays — load_npz_all reads the integer and boolean ones as indices, and
// load_npz(path, keys) reads just the keys asked for. Rewind's tensors are float32 or float64 only, and
// converting quietly would hide a mistake (an array of token ids or a step counter saved next to the
// weights, like PyTorch's `num_batches_tracked`) and round integers above 2^53. The message names
// the key, the dtype and the fix on the Python side (`a.astype('<f4')`, or leave the key out).
// IOError rather than DtypeError is deliberate: one catch clause covers every reason a file cannot
// be loaded.
//
// Keys. A key is stored as the member name `<key>.npy`, as UTF-8 (flagged so, so that np.load reads it
// as written), and loads back byte for byte. Saving refuses, with a ValueError naming the key, what
// could not come back the same: an empty key, a key containing '\0' or another control byte (below
// 0x20) but tab, LF and CR (libzip refuses those in a UTF-8 name), a key that is not valid UTF-8
// (such bytes would be read back as CP437 text, a different key), and a key of more than 65,531
// bytes (a zip name's length is a 16-bit field, and ".npy" takes 4). Loading decodes names UTF-8 when
// flagged or valid, CP437 otherwise (Python's zipfile takes an unflagged name as CP437 even when it is
// valid UTF-8: a name NumPy wrote is flagged whenever it is not ASCII, so both read it alike). The same
// rule holds both ways: a member whose name holds a control byte but tab, LF and CR (np.savez writes
// one) is an IOError naming the key as NumPy reads it — libzip would turn an unflagged one into other
// characters (\x01 into U+263A, another key than NumPy's) and refuses a flagged one — so every key that
// loads saves back as the same key.
//
// Saving throws ValueError, before any file is touched, for an argument that cannot be saved (an
// undefined tensor, a key as above, a duplicate key) and IOError when the file cannot be written.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "npy.hpp"  // encode_npy, decode_npy: one member's codec
#include "tensor.hpp"

namespace rwd {

/// Writes `tensors` to `path` as an uncompressed .npz (like np.savez), atomically; member `<key>.npy`.
/// A key that cannot be stored (see Keys above: empty, a control byte but tab/LF/CR, not UTF-8, too
/// long) is a ValueError naming it, before any file is touched.
void save_npz(const std::string& path, const NamedTensors& tensors);

/// Reads an .npz written by rewind, np.savez or np.savez_compressed; each tensor is named by its key.
NamedTensors load_npz(const std::string& path);

/// Reads only `keys` of the .npz at `path`, in that order; the other members are not read at all
/// (an integer array or anything else beside the weights is no obstacle). An IOError names a key the
/// file does not hold (and the keys it does); a key asked for twice is a ValueError.
NamedTensors load_npz(const std::string& path, const std::vector<std::string>& keys);

/// The keys of the .npz at `path`, in archive order, without reading any array: the archive and its member
/// names are checked as load_npz checks them (IOError naming the file). To read some keys, then
/// load_npz(path, keys) — what load_torch and a non-strict load do, so arrays they skip are never read.
std::vector<std::string> npz_keys(const std::string& path);

/// An integer or boolean array of an .npz (labels, token ids, a mask): its values as int64 — the
/// element type of rwd::Indices — row-major, and its shape.
struct IndexArray {
  std::vector<std::int64_t> values;  ///< the elements as int64, row-major (a '|b1' array as 0 and 1)
  Shape shape;                       ///< the array's shape, as the .npy header gives it
};

/// Everything an .npz holds: float arrays ('<f4', '<f8') as tensors, integer and boolean arrays
/// ('<i1'/'|i1' … '<i8', '<u1'/'|u1' … '<u8', '|b1') as IndexArray, each in archive order. Big-endian
/// arrays, float16, complex and structured arrays, and a '<u8' value above 2^63 − 1, are IOErrors
/// naming the key. An integer array is read whole before conversion (its bytes, then 8 per element).
struct NpzContents {
  NamedTensors tensors;                                     ///< the float arrays, by key
  std::vector<std::pair<std::string, IndexArray>> indices;  ///< the integer and boolean arrays, by key
};
NpzContents load_npz_all(const std::string& path);

/// Sets the largest .npz member (.npy header and data, in bytes) that load_npz reads; default 16 GiB.
void set_npz_member_limit(std::uint64_t bytes);

/// The largest .npz member load_npz reads, in bytes (see set_npz_member_limit).
std::uint64_t npz_member_limit();

/// A key as every error message prints it — a key read from a file (an .npz member, a state_dict's or
/// an optimizer's key, a PyTorch name): between `quote`s, printable ASCII as is but the quote and the
/// backslash escaped (\' \\), every other byte as \xNN. A key over 100 bytes keeps both ends, its first
/// 60 and last 36 bytes around "…", and its length follows: `'encoder.…layers.11.weight' (180 bytes)`.
/// So a key holding newlines or a megabyte of text can neither forge a line of the message nor flood
/// it, and two long keys that differ at either end (or in length) print differently.
std::string quote_key(std::string_view key, char quote = '\'');

/// Keys for a message, each as quote_key prints it, joined by ", "; past the first 20, ", … (N in all)".
std::string quote_keys(const std::vector<std::string>& keys, char quote = '\'');

}  // namespace rwd
