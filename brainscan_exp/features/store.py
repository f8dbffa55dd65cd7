"""Embeddings keyed by content: (pixel hash) within a store keyed by (backbone, weights,
preprocessing, runtime, precision) and the code that computes them.

A store is a folder of Parquet shards, each written under a unique temporary name and renamed into
place (``artefacts.atomic_write``): a process killed at any moment loses at most the shard it was
filling, two processes filling the same key never corrupt it, and readers ignore duplicate hashes.
A second run needing the same images reads them and computes nothing; a run needing new images
computes only those.

Readers get the vectors through :meth:`EmbeddingStore.table`: the shards consolidated once into one
contiguous float32 ``.npy`` (memory-mapped) and a hash array, rebuilt when the set of shards
changes, shard by shard (memory: one shard).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from brainscan_exp.artefacts import atomic_write, content_key
from brainscan_exp.features.vectors import VectorTable

# the code whose source defines what an embedding is: an edit to any of it starts a new store
CODE = (
    "brainscan_exp.data.images",
    "brainscan_exp.preprocessing",
    "brainscan_exp.models.backbones",
    "brainscan_exp.features.decode",
    "brainscan_exp.features.runtimes",
    "brainscan_exp.features.store",
)


def feature_key(spec: dict) -> str:
    """Stable digest of everything that changes an embedding, code included."""
    return content_key(spec, *CODE)


class EmbeddingStore:
    def __init__(self, root: str | Path, spec: dict):
        self.spec = spec
        self.key = feature_key(spec)
        self.dir = Path(root) / self.key
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self.dir / "spec.json"
        if not meta.exists():
            atomic_write(meta, lambda tmp: tmp.write_text(json.dumps(spec, indent=2, sort_keys=True, default=str)))

    def shards(self) -> list[Path]:
        return sorted(self.dir.glob("shard-*.parquet"))

    def table(self) -> VectorTable:
        """Every stored vector: one float32 memmap + hash index (consolidated on first use after a
        shard was added; a duplicate hash keeps its first shard's vector, in shard-name order)."""
        shards = self.shards()
        digest = content_key({"shards": [s.name for s in shards]})
        matrix, index = self.dir / f"vectors-{digest}.npy", self.dir / f"hashes-{digest}.npy"
        if not (matrix.exists() and index.exists()):
            self._consolidate(shards, matrix, index)
            for old in self.dir.glob("vectors-*.npy"):  # superseded consolidations (best effort)
                if old != matrix:
                    old.unlink(missing_ok=True)
                    old.with_name(old.name.replace("vectors-", "hashes-", 1)).unlink(missing_ok=True)
        return VectorTable.open(matrix, index)

    @staticmethod
    def _consolidate(shards: list[Path], matrix: Path, index: Path) -> None:
        keep, seen, dim = [], set(), 0
        for shard in shards:  # pass 1: hashes only
            hashes = pq.read_table(shard, columns=["pixel_hash"]).column("pixel_hash").to_pylist()
            mask = np.zeros(len(hashes), dtype=bool)
            for k, h in enumerate(hashes):
                if h not in seen:
                    seen.add(h)
                    mask[k] = True
            keep.append((hashes, mask))
            if not dim and len(hashes):
                dim = pq.read_schema(shard).field("vector").type.list_size
        n = sum(int(m.sum()) for _, m in keep)
        names = np.array([h for hashes, m in keep for h, k in zip(hashes, m) if k], dtype="S")

        def write(tmp: Path) -> None:  # pass 2: one shard's vectors at a time into the memmap
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, dim))
            row = 0
            for shard, (_, mask) in zip(shards, keep):
                if mask.any():
                    col = pq.read_table(shard, columns=["vector"]).column("vector").combine_chunks()
                    block = col.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)[mask]
                    out[row : row + len(block)] = block
                    row += len(block)
            out.flush()
            del out

        atomic_write(matrix, write)

        def write_index(tmp: Path) -> None:
            with open(tmp, "wb") as f:  # a file object: np.save would append ".npy" to a path
                np.save(f, names)

        atomic_write(index, write_index)

    def load(self, hashes: list[str] | None = None) -> dict[str, np.ndarray]:
        """pixel hash -> float32 vector, for the requested hashes that are stored (a small-subset
        convenience; stages read :meth:`table`)."""
        table = self.table()
        if hashes is None:
            return {h: np.array(v) for h, v in table.items()}
        wanted = list(dict.fromkeys(hashes))
        rows = table.rows(wanted, missing="skip")
        return {h: np.array(table.matrix[r]) for h, r in zip(wanted, rows) if r >= 0}

    def missing(self, hashes: list[str]) -> list[str]:
        have = set()
        for shard in self.shards():
            have.update(pq.read_table(shard, columns=["pixel_hash"]).column("pixel_hash").to_pylist())
        return [h for h in dict.fromkeys(hashes) if h not in have]

    def write_shard(self, hashes: list[str], vectors: np.ndarray) -> Path:
        """Commit one shard atomically (unique name: concurrent writers never collide)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        flat = pa.array(vectors.reshape(-1))
        table = pa.table({"pixel_hash": hashes, "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])})
        return atomic_write(self.dir / f"shard-{uuid.uuid4().hex}.parquet", lambda tmp: pq.write_table(table, tmp))

    def export(self, frame: pd.DataFrame, path: str | Path) -> Path:
        """Write ``frame`` (file, pixel_hash, split, label, ...) with its vectors as one Parquet file."""
        block = self.table().take(frame.pixel_hash.tolist()) if len(frame) else np.zeros((0, 1), np.float32)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        # one fixed-size-list column built from the stacked block: no per-vector Python lists
        column = pa.FixedSizeListArray.from_arrays(pa.array(block.reshape(-1)), block.shape[1])
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.append_column("vector", column), path)
        return path
