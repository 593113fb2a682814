"""Readers and a writer for the files coreattn's trainer exchanges with Python,
in plain Python (no numpy, no torch, no safetensors package), so that the
PyTorch twin (scripts/twin.py) needs nothing beyond torch and the Go tests can
check the formats wherever python3 exists.

  safetensors: u64 LE header length N, N bytes of JSON
               {"name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...,
                "__metadata__": {...}}, then the data (offsets relative to it).
  batches.bin: per step, int32 LE: T, B, cu_seqlens[B+1], tokens[T].

Command line (used by the Go tests):
  python3 scripts/coreattn_io.py batches FILE      # per step: T B sum(cu) sum(tok*(i+1))
  python3 scripts/coreattn_io.py safetensors FILE  # per tensor: name dtype shape-joined-by-x bits(sum(x*(i+1)))
  python3 scripts/coreattn_io.py write-safetensors FILE  # writes a fixed test file
"""
import array
import json
import struct
import sys

DTYPE_SIZE = {"BOOL": 1, "U8": 1, "I8": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
              "I32": 4, "U32": 4, "F32": 4, "F64": 8, "I64": 8, "U64": 8}
MAX_HEADER = 100_000_000
MAX_BATCH_TOKENS = 1 << 28


class FormatError(ValueError):
    """A malformed safetensors or batches.bin file."""


def _le(arr):
    if sys.byteorder != "little":
        arr.byteswap()
    return arr


def read_safetensors(path):
    """Returns (tensors, metadata): tensors maps name -> (dtype, shape, bytes),
    in file order; metadata is the __metadata__ dict (or {})."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise FormatError(f"{path}: truncated: {len(data)} bytes, no header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER:
        raise FormatError(f"{path}: header length {n} is too large")
    if 8 + n > len(data):
        raise FormatError(f"{path}: truncated: header of {n} bytes in a file of {len(data)}")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise FormatError(f"{path}: header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise FormatError(f"{path}: header is not a JSON object")
    meta = header.pop("__metadata__", {}) or {}
    body = memoryview(data)[8 + n:]
    entries = []
    for name, info in header.items():
        try:
            dtype, shape, (b, e) = info["dtype"], info["shape"], info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise FormatError(f"{path}: tensor {name}: bad header entry {info!r}") from None
        if dtype not in DTYPE_SIZE:
            raise FormatError(f"{path}: tensor {name}: unknown dtype {dtype!r}")
        count = 1
        for s in shape:
            count *= s
        if e - b != count * DTYPE_SIZE[dtype] or b < 0:
            raise FormatError(f"{path}: tensor {name}: offsets {b}..{e} do not hold {dtype} {shape}")
        entries.append((b, e, name, dtype, list(shape)))
    entries.sort()
    pos = 0
    for b, e, name, _, _ in entries:
        if b != pos:
            raise FormatError(f"{path}: tensor {name}: data at {b}, expected {pos}")
        pos = e
    if pos > len(body):
        raise FormatError(f"{path}: truncated: data needs {pos} bytes, file has {len(body)}")
    if pos != len(body):
        raise FormatError(f"{path}: {len(body) - pos} bytes after the last tensor")
    tensors = {name: (dtype, shape, body[b:e]) for b, e, name, dtype, shape in entries}
    return tensors, meta


def f32_values(buf):
    """The float32 values of a tensor's bytes, as an array('f')."""
    return _le(array.array("f", bytes(buf)))


def write_safetensors(path, tensors, metadata=None):
    """Writes tensors, a list of (name, shape, array('f') or bytes) in F32."""
    header, blobs, off = {}, [], 0
    for name, shape, values in tensors:
        raw = bytes(_le(array.array("f", values))) if not isinstance(values, (bytes, bytearray)) else bytes(values)
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def iter_batches(path):
    """Yields (cu_seqlens, tokens) as array('i') per step of batches.bin."""
    with open(path, "rb") as f:
        step, offset = 0, 0
        while True:
            head = f.read(8)
            if not head:
                return
            if len(head) < 8:
                raise FormatError(f"{path}: step {step} (byte {offset}): truncated inside the header")
            t, b = struct.unpack("<ii", head)
            if not (0 < b <= t <= MAX_BATCH_TOKENS):
                raise FormatError(f"{path}: step {step} (byte {offset}): T = {t}, B = {b}")
            body = f.read(4 * (b + 1 + t))
            if len(body) < 4 * (b + 1 + t):
                raise FormatError(f"{path}: step {step} (byte {offset}): truncated inside the body")
            vals = _le(array.array("i", body))
            cu, tokens = vals[:b + 1], vals[b + 1:]
            if cu[0] != 0 or cu[-1] != t or any(cu[i] >= cu[i + 1] for i in range(b)):
                raise FormatError(f"{path}: step {step} (byte {offset}): bad cu_seqlens")
            if min(tokens) < 0 or max(tokens) > 255:
                raise FormatError(f"{path}: step {step} (byte {offset}): token outside 0..255")
            yield cu, tokens
            step += 1
            offset += 8 + len(body)


def _bits(x):
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__)
    cmd, path = argv[1], argv[2]
    try:
        if cmd == "batches":
            for cu, tokens in iter_batches(path):
                print(len(tokens), len(cu) - 1, sum(cu), sum(v * (i + 1) for i, v in enumerate(tokens)))
        elif cmd == "safetensors":
            tensors, meta = read_safetensors(path)
            for name in sorted(tensors):
                dtype, shape, buf = tensors[name]
                s = 0.0
                if dtype == "F32":
                    for i, v in enumerate(f32_values(buf)):
                        s += v * (i + 1)
                print(name, dtype, "x".join(map(str, shape)) or "scalar", _bits(s))
            print("__metadata__", json.dumps(meta, sort_keys=True))
        elif cmd == "write-safetensors":
            write_safetensors(path, [
                ("b.bias", [3], [0.5, -1.25, 3.0]),
                ("a.weight", [2, 2], [1.0, 2.0, -3.5, 1e-30]),
            ], {"format": "pt"})
        else:
            sys.exit(__doc__)
    except FormatError as e:
        sys.exit(f"coreattn_io: {e}")


if __name__ == "__main__":
    main(sys.argv)
