// rewind/core/npy.hpp — one tensor as an .npy file's bytes, and back: the codec of an .npz archive's
// members (core/npz.hpp describes the format, what is written and what is read, and every failure).
//
//   std::string bytes = encode_npy(W);                  // what np.save writes for W.numpy()
//   Tensor back = decode_npy(bytes, "\"w.npy\"");        // IOError naming "w.npy" if the bytes are bad
#pragma once

#include <string>

#include "tensor.hpp"

namespace rwd {

/// One tensor as the bytes of an .npy file (NPY v1.0, little-endian, C order).
std::string encode_npy(const Tensor& tensor);

/// Decodes the bytes of an .npy file; `what` names it in error messages (e.g. `"w.npz", key "b"`).
Tensor decode_npy(const std::string& bytes, const std::string& what);

}  // namespace rwd
