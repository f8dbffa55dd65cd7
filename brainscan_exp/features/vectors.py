"""Vectors as one contiguous float32 matrix with a hash -> row index: what every stage reads.

Why not a dict of arrays: at 4 million images a ``{hash: vector}`` dict holds 8.3 GB of vectors
plus a Python object per vector, all in memory. A :class:`VectorTable` is a ``(n, d)`` float32
matrix, in memory or a read-only ``np.memmap`` of a consolidated ``.npy`` file (the OS pages in
the rows a stage touches), and a sorted array of fixed-width hash bytes searched with
``np.searchsorted`` (40 bytes per image, no Python object per row).

It is a read-only ``Mapping[str, np.ndarray]``, so ``table[h]``, ``h in table``, ``len`` and
iteration keep working where a dict was used; :meth:`VectorTable.take` gives the stacked rows of
many hashes at once.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["RowView", "VectorTable", "as_matrix", "release_pages"]


def release_pages(matrix) -> None:
    """Unmap a memmap's pages from this process (they stay in the page cache, so a later read
    is still a memory copy, not a disk read). Why: pages a read touched stay resident, and the
    kernel maps up to 64 KB around each one, so even a 50,000-row sample of a 1 M-row memmap
    made 2 GB resident; a full pass over a 4 M-row memmap would hold 8 GB. No-op otherwise."""
    base = getattr(matrix, "matrix", matrix)  # a RowView reads from its matrix
    handle = getattr(base, "_mmap", None)
    if handle is not None and hasattr(handle, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        handle.madvise(mmap.MADV_DONTNEED)


def _as_bytes(hashes: Iterable[str] | np.ndarray) -> np.ndarray:
    arr = np.asarray(hashes if isinstance(hashes, np.ndarray) else list(hashes))
    if arr.dtype.kind == "U":
        return np.char.encode(arr, "ascii")
    if arr.dtype.kind == "S":
        return arr
    if len(arr) == 0:
        return np.empty(0, dtype="S1")
    return np.char.encode(arr.astype(str), "ascii")


class VectorTable(Mapping):
    """``hashes[k]`` names row ``k`` of ``matrix`` (``(n, d)`` float32, e.g. a memmap).

    Hashes must be unique. The index is the sorted hash bytes and the row of each.
    """

    def __init__(self, hashes: Sequence[str] | np.ndarray, matrix: np.ndarray):
        keys = _as_bytes(hashes)
        if matrix.ndim != 2 or len(matrix) != len(keys):
            raise ValueError(f"matrix {matrix.shape} does not match {len(keys)} hashes")
        self.hashes = keys
        self.matrix = matrix
        self._order = np.argsort(keys, kind="stable")
        self._sorted = keys[self._order]
        if len(keys) > 1 and (self._sorted[1:] == self._sorted[:-1]).any():
            raise ValueError("duplicate hashes in a VectorTable")

    @classmethod
    def empty(cls, dim: int = 0) -> VectorTable:
        return cls(np.empty(0, dtype="S1"), np.zeros((0, dim), np.float32))

    @classmethod
    def from_dict(cls, vectors: Mapping[str, np.ndarray]) -> VectorTable:
        """In-memory table of a small ``{hash: vector}`` mapping (tests, generated data)."""
        hashes = list(vectors)
        if not hashes:
            return cls.empty()
        return cls(hashes, np.stack([np.asarray(vectors[h], np.float32) for h in hashes]))

    @classmethod
    def open(cls, matrix_path: str | Path, hashes_path: str | Path) -> VectorTable:
        """A consolidated table on disk: the matrix memory-mapped read-only, the hashes loaded."""
        return cls(np.load(hashes_path), np.load(matrix_path, mmap_mode="r"))

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def rows(self, hashes: Iterable[str] | np.ndarray, missing: str = "raise") -> np.ndarray:
        """Row of each hash (int64); ``missing="raise"`` (KeyError) or ``"skip"`` (-1)."""
        keys = _as_bytes(hashes)
        if len(keys) == 0:
            return np.empty(0, dtype=np.int64)
        if len(self._sorted) == 0:
            pos = np.zeros(len(keys), dtype=np.int64)
            found = np.zeros(len(keys), dtype=bool)
        else:
            pos = np.searchsorted(self._sorted, keys).clip(0, len(self._sorted) - 1)
            found = self._sorted[pos] == keys
        if not found.all() and missing == "raise":
            raise KeyError(keys[~found][0].decode())
        return np.where(found, self._order[pos], -1).astype(np.int64)

    def take(self, hashes: Iterable[str] | np.ndarray) -> np.ndarray:
        """Stacked vectors of ``hashes``, in order: a new ``(len(hashes), d)`` float32 array."""
        rows = self.rows(hashes)
        if len(rows) == 0:
            return np.zeros((0, self.dim), np.float32)
        return np.asarray(RowView(self.matrix, rows)[:], dtype=np.float32)

    @classmethod
    def concat(cls, tables: Sequence[VectorTable]) -> VectorTable:
        """In-memory union of ``tables``' rows (a hash in several keeps its first table's vector)."""
        tables = [t for t in tables if len(t)]
        if not tables:
            return cls.empty()
        keys = np.concatenate([t.hashes for t in tables])
        _, first = np.unique(keys, return_index=True)
        first.sort()
        return cls(keys[first], np.concatenate([np.asarray(t.matrix) for t in tables])[first])

    def view(self, hashes: Iterable[str] | np.ndarray) -> RowView:
        """The rows of ``hashes`` as a lazy ``(len(hashes), d)`` array-like over the matrix (no copy)."""
        return RowView(self.matrix, self.rows(hashes))

    def hstack(self, others: Sequence[VectorTable], hashes: Sequence[str] | None = None) -> VectorTable:
        """In-memory table of ``hashes`` (default: all of this table's) whose rows concatenate this
        table's vector and each of ``others``' (several backbones)."""
        keys = self.hashes if hashes is None else _as_bytes(hashes)
        return VectorTable(keys, np.hstack([self.take(keys)] + [o.take(keys) for o in others]))

    def __getitem__(self, h: str) -> np.ndarray:
        return self.matrix[int(self.rows([h])[0])]

    def __contains__(self, h: object) -> bool:
        return isinstance(h, str) and self.rows([h], missing="skip")[0] >= 0

    def __iter__(self) -> Iterator[str]:
        return (h.decode() for h in self.hashes)

    def __len__(self) -> int:
        return len(self.hashes)


class RowView:
    """``matrix[rows]`` without the copy: ``len``, ``shape``, ``ndim`` and indexing by an int, a
    slice or an int array read only the rows asked for (sorted, so a memmap reads sequentially),
    into a new array, and leave none of the memmap's pages resident (:func:`release_pages`)."""

    BLOCK = 4096  # rows read between two releases of a memmap's pages

    def __init__(self, matrix: np.ndarray, rows: np.ndarray):
        self.matrix, self.rows = matrix, np.asarray(rows, dtype=np.int64)
        self.shape = (len(self.rows), matrix.shape[1])
        self.ndim, self.dtype = 2, matrix.dtype

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return np.asarray(self.matrix[self.rows[key]])
        rows = self.rows[key]
        order = np.argsort(rows, kind="stable")
        out = np.empty((len(rows), self.shape[1]), self.dtype)
        for s in range(0, len(rows), self.BLOCK):  # scattered rows: each maps up to 64 KB around it
            block = order[s : s + self.BLOCK]
            out[block] = self.matrix[rows[block]]
            release_pages(self.matrix)
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[np.arange(len(self))]
        return out if dtype is None else out.astype(dtype)


def as_matrix(vectors: Mapping[str, np.ndarray], hashes: Iterable[str], dim: int | None = None) -> np.ndarray:
    """Stacked float32 vectors of ``hashes`` from a :class:`VectorTable` or a plain mapping."""
    hashes = list(hashes)
    if isinstance(vectors, VectorTable):
        return vectors.take(hashes) if hashes or dim is None else np.zeros((0, dim), np.float32)
    if not hashes:
        return np.zeros((0, dim or len(next(iter(vectors.values())))), np.float32)
    return np.stack([vectors[h] for h in hashes]).astype(np.float32)
