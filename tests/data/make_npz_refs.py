#!/usr/bin/env python3
"""Writes the NumPy reference files that tests/core/test_npz.cpp reads (run from anywhere; writes next to itself).

    $(command -p -v python3) tests/data/make_npz_refs.py        # Debian 12: python3-numpy 1.24.2

The test suite itself never runs Python: the files are committed, and the values they hold are
written out again, literally, in the test. Everything is small (a few hundred bytes per file).

  npz_savez.npz             np.savez: the arrays below, stored
  npz_savez_compressed.npz  np.savez_compressed: the same arrays, deflated
  npy_*.npy                 np.save of single arrays: the test compares rewind's encode_npy byte for byte
  bad_*.npz                 archives NumPy's writer would not produce, each wrong in one way
"""
import io
import os
import zipfile

import numpy as np
from numpy.lib import format as npy_format

HERE = os.path.dirname(os.path.abspath(__file__))


def path(name):
    return os.path.join(HERE, name)


# The arrays, with the keys of a small model (dotted, PyTorch-style). Values are chosen to be exact
# in their dtype or to test rounding the same way C++ does (0.1 as float32 is float(0.1) in both).
arrays = {
    "0.weight": np.array([[0.1, -2.5, 3e-8], [1e30, -0.0, 7.0]], dtype="<f4"),      # 2-d float32
    "0.bias": np.array([0.5, -1.25, np.inf], dtype="<f4"),                          # 1-d, with inf
    "scalar": np.array(3.141592653589793, dtype="<f8"),                             # 0-d float64
    "encoder.bias": (np.arange(24, dtype="<f8").reshape(2, 3, 1, 4) / 8 - 1),       # 4-d float64
    "empty": np.zeros((0, 3), dtype="<f4"),                                         # a zero-size dimension
    # Fortran order (what np.save writes for a transposed array): element [i, j] of the 2-d one is
    # 1.5 * (4 i + j) - 2, element [i, j, k] of the 3-d one is 12 i + 4 j + k, in either order.
    "fortran2d": np.asfortranarray(np.arange(12, dtype="<f8").reshape(3, 4) * 1.5 - 2),
    "fortran3d": np.asfortranarray(np.arange(24, dtype="<f4").reshape(2, 3, 4)),
}
assert arrays["fortran2d"].flags.f_contiguous and not arrays["fortran2d"].flags.c_contiguous

np.savez(path("npz_savez.npz"), **arrays)
np.savez_compressed(path("npz_savez_compressed.npz"), **arrays)

np.save(path("npy_2x3_f32.npy"), arrays["0.weight"])
np.save(path("npy_0d_f64.npy"), arrays["scalar"])
np.save(path("npy_0x3_f32.npy"), arrays["empty"])
np.save(path("npy_4d_f64.npy"), arrays["encoder.bias"])
# A first dimension with many digits (NumPy leaves 21 - digits spare spaces for growing it).
np.save(path("npy_123456789x0_f32.npy"), np.zeros((123456789, 0), dtype="<f4"))


def npy_bytes(array):
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def header_bytes(header_text):
    """Magic, version 1.0 and a hand-written header, padded like NumPy's (to 64 bytes, ending '\\n')."""
    text = header_text.encode("latin1")
    hlen = len(text) + 1
    pad = 64 - (10 + hlen) % 64
    return b"\x93NUMPY\x01\x00" + (hlen + pad).to_bytes(2, "little") + text + b" " * pad + b"\n"


def write_zip(name, members):
    with zipfile.ZipFile(path(name), "w", compression=zipfile.ZIP_STORED) as z:
        for member, data in members:
            # A fixed date, so that rerunning the script reproduces the files byte for byte.
            z.writestr(zipfile.ZipInfo(member, date_time=(2024, 1, 1, 0, 0, 0)), data)


good = np.array([1.0, 2.0], dtype="<f4")
# A member that is not an array (np.load would hand it back as bytes; rewind refuses the file).
write_zip("bad_not_npy.npz", [("good.npy", npy_bytes(good)), ("notes.txt", b"not an array\n")])
# A member named .npy that is not one.
write_zip("bad_magic.npz", [("w.npy", b"PK-not-numpy" + bytes(64))])
# A header without its 'shape' key.
write_zip("bad_header.npz", [("w.npy", header_bytes("{'descr': '<f4', 'fortran_order': False, }") + bytes(8))])
# Shape (2, 3) of float32 needs 24 bytes of data; this member has 20.
write_zip("bad_size.npz", [("w.npy", npy_bytes(np.zeros((2, 3), dtype="<f4"))[:-4])])
# Valid NumPy arrays of dtypes rewind has no tensor for.
np.savez(path("bad_big_endian.npz"), w=np.array([1.0, 2.0], dtype=">f8"))
np.savez(path("bad_int64.npz"), **{"0.weight": np.ones(2, dtype="<f4"), "steps": np.arange(3, dtype="<i8")})

# Integer and boolean arrays beside a float one, as a dataset or a training state holds them
# (load_npz_all reads them as indices; load_npz with keys skips them).
tokens = np.array([[1, 2, 3], [4, 5, 6]], dtype="<i4")
np.savez(path("npz_mixed.npz"), **{
    "weight": np.array([[0.5, -1.0], [2.0, 4.0]], dtype="<f4"),
    "labels": np.array([3, 0, 9, -1], dtype="<i8"),
    "tokens": tokens,
    "tokens_f": np.asfortranarray(np.arange(6, dtype="<i2").reshape(2, 3) - 3),  # Fortran order
    "mask": np.array([True, False, True]),
    "small": np.array([0, 255], dtype="|u1"),
    "tiny": np.array([-128, 127], dtype="|i1"),
    "u16": np.array([65535], dtype="<u2"),
    "u32": np.array([4294967295], dtype="<u4"),
    "u64": np.array([2**63 - 1], dtype="<u8"),
    "count": np.array(7, dtype="<i8"),                                              # 0-d
})
np.savez(path("bad_u64_too_big.npz"), ids=np.array([1, 2**63], dtype="<u8"))
np.savez(path("bad_int_big_endian.npz"), ids=np.array([1, 2], dtype=">i4"))

print("numpy", np.__version__, "wrote the reference files in", HERE)
