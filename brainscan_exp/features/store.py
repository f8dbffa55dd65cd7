"""Embeddings keyed by content: (pixel hash) within a store keyed by (backbone, weights,
preprocessing, runtime, precision) and the code that computes them.

A store is a folder of Parquet shards, each written under a unique temporary name and renamed into
place (``artefacts.atomic_write``): a process killed at any moment loses at most the shard it was
filling, two processes filling the same key never corrupt it, and readers ignore duplicate hashes.
A second run needing the same images reads them and computes nothing; a run needing new images
computes only those.
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

    def load(self, hashes: list[str] | None = None) -> dict[str, np.ndarray]:
        """pixel hash -> float32 vector, for the requested hashes that are stored."""
        wanted = set(hashes) if hashes is not None else None
        found: dict[str, np.ndarray] = {}
        for shard in self.shards():
            table = pq.read_table(shard)
            col = table.column("vector").combine_chunks()
            vectors = col.flatten().to_numpy(zero_copy_only=False).reshape(-1, col.type.list_size)
            for h, v in zip(table.column("pixel_hash").to_pylist(), vectors):
                if (wanted is None or h in wanted) and h not in found:
                    found[h] = v
        return found

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
        vectors = self.load(frame.pixel_hash.tolist())
        block = np.stack([vectors[h] for h in frame.pixel_hash]) if len(frame) else np.zeros((0, 1), np.float32)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        # one fixed-size-list column built from the stacked block: no per-vector Python lists
        column = pa.FixedSizeListArray.from_arrays(pa.array(block.reshape(-1)), block.shape[1])
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.append_column("vector", column), path)
        return path
