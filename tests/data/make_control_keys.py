# Makes the .npz files of tests/test_files_audit_s14.cpp whose keys hold a control byte, as np.savez
# writes them (rewind's save_npz refuses such keys, so it cannot make them):
#   key_control_byte.npz       'w' and 'a\x01b' — ASCII names: stored without the zip's UTF-8 flag
#   key_control_byte_utf8.npz  '\u00e9\x01' — a non-ASCII name: flagged UTF-8
# Run: python3 tests/data/make_control_keys.py   (from the repository root; NumPy only)
import os

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
np.savez(os.path.join(here, "key_control_byte.npz"), w=np.array([1.0, 2.0]), **{"a\x01b": np.array([3.0])})
np.savez(os.path.join(here, "key_control_byte_utf8.npz"), **{"\u00e9\x01": np.array([4.0])})
