"""Embeddings keyed by content: (pixel hash) within a store keyed by (backbone, weights, preprocessing).

Each extraction run appends one Parquet part written to a temporary name and renamed into place,
so two jobs filling the same key at once never corrupt it; readers ignore duplicate hashes. A
second run needing the same images reads them and computes nothing; a run needing new images
computes only those.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

STORE_VERSION = 2  # bump when extraction or preprocessing code changes what an embedding is


def feature_key(spec: dict) -> str:
    """Stable digest of everything that changes an embedding."""
    blob = json.dumps({"version": STORE_VERSION, **spec}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


class EmbeddingStore:
    def __init__(self, root: str | Path, spec: dict):
        self.spec = spec
        self.key = feature_key(spec)
        self.dir = Path(root) / self.key
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self.dir / "spec.json"
        if not meta.exists():
            self._atomic_write_bytes(meta, json.dumps(spec, indent=2, sort_keys=True, default=str).encode())

    @staticmethod
    def _atomic_write_bytes(path: Path, data: bytes) -> None:
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def parts(self) -> list[Path]:
        return sorted(self.dir.glob("part-*.parquet"))

    def load(self, hashes: list[str] | None = None) -> dict[str, np.ndarray]:
        """pixel hash -> float32 vector, for the requested hashes that are stored."""
        wanted = set(hashes) if hashes is not None else None
        found: dict[str, np.ndarray] = {}
        for part in self.parts():
            table = pq.read_table(part)
            col = table.column("vector").combine_chunks()
            dim = col.type.list_size
            vectors = col.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
            for h, v in zip(table.column("pixel_hash").to_pylist(), vectors):
                if (wanted is None or h in wanted) and h not in found:
                    found[h] = v
        return found

    def missing(self, hashes: list[str]) -> list[str]:
        have = set()
        for part in self.parts():
            have.update(pq.read_table(part, columns=["pixel_hash"]).column("pixel_hash").to_pylist())
        return [h for h in dict.fromkeys(hashes) if h not in have]

    def append(self, hashes: list[str], vectors: np.ndarray) -> Path:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        flat = pa.array(vectors.reshape(-1))
        table = pa.table({"pixel_hash": hashes, "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])})
        path = self.dir / f"part-{uuid.uuid4().hex}.parquet"
        tmp = path.with_name(f".{path.name}.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, path)
        return path

    def export(self, frame: pd.DataFrame, path: str | Path) -> Path:
        """Write ``frame`` (file, pixel_hash, split, label, ...) with its vectors as one Parquet file."""
        vectors = self.load(frame.pixel_hash.tolist())
        out = frame.copy()
        out["vector"] = [vectors[h].tolist() for h in out.pixel_hash]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        out.to_parquet(path, index=False)
        return path
