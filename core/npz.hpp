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
// output). The write is atomic: the archive goes to a temporary file in the target's
// directory, is flushed to disk, and is renamed over the target only once complete, so a failure at
// any point leaves the old file as it was (and removes the temporary).
//
// Reading: stored or deflated members (np.savez and np.savez_compressed), NPY versions 1.0, 2.0 and
// 3.0, dtypes '<f4' → float32 and '<f8' → float64, C or Fortran order (Fortran-order arrays, which
// NumPy writes for a transposed array such as `W.T`, are reordered to C order), 0-d arrays, and
// zero-size dimensions. Everything is checked, and every failure is a rwd::IOError whose message
// names the file and, past the archive level, the key: a missing file, not a zip archive, a truncated
// archive, a member whose CRC does not match (corrupt data), a member that is not `<key>.npy`, a
// duplicate key, a bad magic string or header, data shorter or longer than the shape needs, and
// dtypes rewind has no tensor for.
//
// Those dtypes are rejected rather than converted: big-endian ('>f4'), integers ('<i8', '<i4'),
// bool, float16, complex and structured arrays. Rewind's tensors are float32 or float64 only, and
// converting quietly would hide a mistake (an array of token ids or a step counter saved next to the
// weights, like PyTorch's `num_batches_tracked`) and round integers above 2^53. The message names
// the key, the dtype and the fix on the Python side (`a.astype('<f4')`, or leave the key out).
// IOError rather than DtypeError is deliberate: one catch clause covers every reason a file cannot
// be loaded.
//
// Saving throws ValueError, before any file is touched, for an argument that cannot be saved (an
// undefined tensor, an empty key, a key containing '\0', a duplicate key) and IOError when the file
// cannot be written.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "tensor.hpp"

namespace rwd {

/// Writes `tensors` to `path` as an uncompressed .npz (like np.savez), atomically; member `<key>.npy`.
void save_npz(const std::string& path, const NamedTensors& tensors);

/// Reads an .npz written by rewind, np.savez or np.savez_compressed; each tensor is named by its key.
NamedTensors load_npz(const std::string& path);

/// One tensor as the bytes of an .npy file (NPY v1.0, little-endian, C order).
std::string encode_npy(const Tensor& tensor);

/// Decodes the bytes of an .npy file; `what` names it in error messages (e.g. `"w.npz", key "b"`).
Tensor decode_npy(const std::string& bytes, const std::string& what);

}  // namespace rwd
