#!/usr/bin/env python3
"""Checks that NumPy reads an .npz written by rewind (the other direction of the interop test).

    REWIND_NPZ_EXPORT=/tmp/from_rewind.npz build/rewind_tests -tc='npz: a file for NumPy'
    $(command -p -v python3) tests/data/check_numpy_reads.py /tmp/from_rewind.npz

The test case writes the arrays below with save_npz; this script loads them with np.load (which
refuses anything malformed) and compares keys, order, dtypes, shapes, C order, the exact values and
the .npy header bytes with what np.save itself writes. Exits non-zero on any difference.
"""
import io
import sys
import zipfile

import numpy as np

expected = {
    "0.weight": np.array([[0.1, -2.5, 3e-8], [1e30, -0.0, 7.0]], dtype="<f4"),
    "0.bias": np.array([0.5, -1.25, np.inf], dtype="<f4"),
    "scalar": np.array(3.141592653589793, dtype="<f8"),
    "encoder.bias": np.arange(24, dtype="<f8").reshape(2, 3, 1, 4) / 8 - 1,
    "empty": np.zeros((0, 3), dtype="<f4"),
}

path = sys.argv[1]
ok = True
with np.load(path, allow_pickle=False) as npz:
    if list(npz.keys()) != list(expected):
        print(f"FAIL: keys {list(npz.keys())}, expected {list(expected)}")
        ok = False
    for key, want in expected.items():
        got = npz[key]
        if got.dtype != want.dtype or got.shape != want.shape or not got.flags.c_contiguous:
            print(f"FAIL: {key}: {got.dtype} {got.shape}, expected {want.dtype} {want.shape}")
            ok = False
        elif not np.array_equal(got, want) or not np.array_equal(np.signbit(got), np.signbit(want)):
            print(f"FAIL: {key}: values {got!r}, expected {want!r}")
            ok = False
        else:
            print(f"ok: {key} {got.dtype.str} {got.shape}")

with zipfile.ZipFile(path) as z:
    if z.testzip() is not None:
        print("FAIL: CRC check of", z.testzip())
        ok = False
    for info, (key, want) in zip(z.infolist(), expected.items()):
        buf = io.BytesIO()
        np.save(buf, want)
        if z.read(info) != buf.getvalue():
            print(f"FAIL: {key}: the member's bytes differ from np.save's")
            ok = False
        if info.compress_type != zipfile.ZIP_STORED:
            print(f"FAIL: {key}: compressed; np.savez stores")
            ok = False

print("numpy", np.__version__, "reads", path, ":", "OK" if ok else "FAILED")
sys.exit(0 if ok else 1)
