"""Stable randomness: seeds from a cryptographic hash of named parts (never Python's salted hash()), and
counter-based per-row uniforms so a row's random values depend only on (key, track, frame, stream).

Counter-based values are what make a window a true slice: simulating 08:00-09:00 draws exactly the values
the full day draws for those rows, without generating the rest of the day.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from statistics import NormalDist

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_A = np.uint64(0x9E3779B97F4A7C15)
_B = np.uint64(0xD1B54A32D192ED03)
_C = np.uint64(0x8CB92BA72F3D8DD7)


def stable_key(*parts: object) -> int:
    """A 64-bit integer derived from the parts' text; identical on every machine and Python run."""
    text = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def stable_rng(*parts: object) -> np.random.Generator:
    return np.random.default_rng(stable_key(*parts))


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection on uint64 that scrambles every input bit into every output bit."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def _hashed_bits(key: int, a: np.ndarray, b: np.ndarray, stream: int) -> np.ndarray:
    base = np.uint64(stable_key(key, stream))
    z = np.asarray(a).astype(np.uint64) * _A + np.asarray(b).astype(np.uint64) * _B + base
    return _mix(z ^ _C)


def hashed_uniform(key: int, a: np.ndarray, b: np.ndarray, stream: int) -> np.ndarray:
    """Uniform [0, 1) floats (53-bit), one per (a[i], b[i]) pair, a pure function of (key, a, b, stream)."""
    return (_hashed_bits(key, a, b, stream) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def hashed_uniform_pair(key: int, a: np.ndarray, b: np.ndarray, stream: int) -> tuple[np.ndarray, np.ndarray]:
    """Two independent 32-bit uniform [0, 1) streams from one hash (half the cost of two calls)."""
    z = _hashed_bits(key, a, b, stream)
    scale = 1.0 / (1 << 32)
    return (
        (z >> np.uint64(32)).astype(np.float64) * scale,
        (z & np.uint64(0xFFFFFFFF)).astype(np.float64) * scale,
    )


def hashed_normals(key: int, a: np.ndarray, b: np.ndarray, stream: int) -> tuple[np.ndarray, ...]:
    """Four independent standard normal streams (float32) from one 64-bit hash: each 16-bit quarter of it
    picks one of 2^16 equal-probability normal quantiles."""
    z = _hashed_bits(key, a, b, stream)
    table = _normal_table()
    mask = np.uint64(0xFFFF)
    return tuple(table[((z >> np.uint64(16 * i)) & mask).astype(np.intp)] for i in range(4))


@lru_cache(maxsize=1)
def _normal_table() -> np.ndarray:
    n = 1 << 16
    inv = NormalDist().inv_cdf
    return np.array([inv((i + 0.5) / n) for i in range(n)], dtype=np.float32)
