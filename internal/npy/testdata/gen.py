"""Writes the .npy fixtures of internal/npy's tests with NumPy itself.

Run from this directory with a Python that has NumPy:
    python3 gen.py
Every file is checked with np.load: the bad_* ones are headers NumPy
refuses, every other one a header NumPy accepts.
Values: float files hold arange(n)*0.5 - 1, integer files arange(n), both
in the file's shape, C order. The hand-made headers (keys reordered, no
spaces, double quotes, 12L dimensions, ...) are written raw and then
loaded with NumPy to prove that NumPy reads them.
"""
import os
import struct

import numpy as np
from numpy.lib import format as npf

here = os.path.dirname(os.path.abspath(__file__))


def path(name):
    return os.path.join(here, name)


def floats(shape, dtype):
    n = int(np.prod(shape)) if shape else 1
    return (np.arange(n) * 0.5 - 1).astype(dtype).reshape(shape)


def ints(shape, dtype):
    n = int(np.prod(shape)) if shape else 1
    return np.arange(n).astype(dtype).reshape(shape)


def save(name, arr, version=None):
    with open(path(name), "wb") as f:
        npf.write_array(f, arr, version=version, allow_pickle=False)
    back = np.load(path(name))
    assert back.dtype == arr.dtype and back.shape == arr.shape and np.array_equal(back, arr), name


def raw(name, major, header, body):
    """Writes a header dictionary text as given, padded as NumPy pads."""
    h = header.encode("utf8" if major == 3 else "latin1")
    pre = 10 if major == 1 else 12
    pad = (-(pre + len(h) + 1)) % 64
    h = h + b" " * pad + b"\n"
    with open(path(name), "wb") as f:
        f.write(b"\x93NUMPY" + bytes([major, 0]))
        f.write(struct.pack("<H" if major == 1 else "<I", len(h)))
        f.write(h)
        f.write(body)
    np.load(path(name))  # raises unless NumPy accepts it


# Files as np.save writes them.
save("f4_v1.npy", floats((3, 2, 4), "<f4"))
save("f4_v2.npy", floats((3, 2, 4), "<f4"), version=(2, 0))
save("f4_v3.npy", floats((3, 2, 4), "<f4"), version=(3, 0))
save("f8.npy", floats((2, 3), "<f8"))
save("f2.npy", floats((5,), "<f2"))
save("f4_be.npy", floats((2, 2), ">f4"))
save("f4_scalar.npy", floats((), "<f4"))
save("f4_empty.npy", floats((0, 4), "<f4"))
save("f4_fortran_1d.npy", np.asfortranarray(floats((6,), "<f4")))
save("f4_fortran_2d.npy", np.asfortranarray(floats((2, 3), "<f4")))
for t in ["i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8"]:
    save(f"{t}.npy", ints((5,), ("|" if t[1] == "1" else "<") + t))
save("b1.npy", np.array([True, False]))
save("c8.npy", np.zeros(2, dtype="<c8"))

# Headers NumPy reads that np.save does not write.
body = floats((3, 2, 4), "<f4").tobytes()
raw("h_key_order.npy", 1, "{'shape': (3, 2, 4), 'fortran_order': False, 'descr': '<f4'}", body)
raw("h_no_spaces.npy", 1, "{'descr':'<f4','fortran_order':False,'shape':(3,2,4)}", body)
raw("h_double_quotes.npy", 1, '{"descr": "<f4", "fortran_order": False, "shape": (3, 2, 4)}', body)
raw("h_long_dims.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3L, 2L, 4L), }", body)
raw("h_spacing.npy", 1, "{ 'descr' :  '<f4' ,\t'fortran_order' : False ,  'shape' : ( 3 , 2 , 4 , ) , }", body)
raw("h_native_order.npy", 1, "{'descr': '=f4', 'fortran_order': False, 'shape': (3, 2, 4), }", body)
raw("h_v3_utf8.npy", 3, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2, 4), }", body)
raw("h_v2_reordered.npy", 2, '{"fortran_order":False,"shape":(3,2,4,),"descr":"<f4",}', body)
raw("h_name_descr.npy", 1, "{'descr': 'float32', 'fortran_order': False, 'shape': (3, 2, 4)}", body)


def rejected(name, header):
    """Writes a header NumPy refuses; the reader must refuse it too."""
    try:
        raw(name, 1, header, body)
    except ValueError:
        return
    raise AssertionError(name + ": NumPy accepted it")


rejected("bad_list_shape.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': [3, 2, 4]}")
rejected("bad_extra_key.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2, 4), 'x': 1}")
rejected("bad_missing_key.npy", "{'descr': '<f4', 'shape': (3, 2, 4)}")
rejected("bad_float_dim.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2.0, 4)}")
rejected("bad_order_not_bool.npy", "{'descr': '<f4', 'fortran_order': 0, 'shape': (3, 2, 4)}")
