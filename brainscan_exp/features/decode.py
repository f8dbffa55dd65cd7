"""Threaded input pipeline: image paths -> contiguous float32 batches for the embedding model.

Why threads and not DataLoader workers: JPEG decoding (PIL) and the MRI steps (OpenCV) release
the GIL, so a thread pool decodes in parallel without worker processes, pickling or per-image
torch tensors; each image is written straight into its row of a preallocated batch. Batches are
decoded ahead of the model (``prefetch``, one task per batch), so decoding overlaps inference.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from brainscan_exp.preprocessing import ImageTransform, MRIPreprocess


class BatchDecoder:
    """Decode + MRI steps + the model's eval transform (``ImageTransform``) for lists of paths."""

    def __init__(self, data_config: dict, mri: MRIPreprocess, fast_decode: bool = True, threads: int = 2):
        self.transform = ImageTransform(data_config, mri, train=False, fast_decode=fast_decode)
        if self.transform.grey_eval is None:
            raise ValueError(f"crop_mode {data_config.get('crop_mode')!r} is not supported; use center")
        self.shape, self.threads = tuple(data_config["input_size"]), max(1, threads)
        self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="decode")

    def _fill(self, batch: np.ndarray, rows: range, paths: list[str]) -> None:
        for row, path in zip(rows, paths):
            self.transform.grey_eval.array(self.transform.load_array(path), out=batch[row])

    def _submit(self, paths: list[str], size: int, parts: int = 1):
        """Start decoding ``paths`` into a new batch of ``size`` rows, as ``parts`` tasks (one task
        per batch when batches are decoded ahead: fewer futures, less per-image overhead)."""
        batch = np.zeros((size, *self.shape), np.float32)  # rows past len(paths) stay zero (padding)
        step = -(-len(paths) // max(1, parts)) or 1
        futures = [
            self.pool.submit(self._fill, batch, range(i, i + step), paths[i : i + step])
            for i in range(0, len(paths), step)
        ]
        return batch, futures

    def decode(self, paths: list[str], size: int | None = None) -> np.ndarray:
        """One batch of ``size`` rows (default ``len(paths)``), the first ``len(paths)`` filled."""
        batch, futures = self._submit(list(paths), size or len(paths), parts=self.threads)
        for future in futures:
            future.result()
        return batch

    def batches(self, paths: list[str], size: int, prefetch: int = 3) -> Iterator[np.ndarray]:
        """Fixed-size batches of ``paths`` in order (the last zero-padded), at least ``prefetch``
        (and one per thread) decoded ahead."""
        prefetch = max(prefetch, self.threads)
        chunks = [paths[i : i + size] for i in range(0, len(paths), size)]
        pending = deque(self._submit(c, size) for c in chunks[:prefetch])
        for k in range(len(chunks)):
            batch, futures = pending.popleft()
            for future in futures:
                future.result()
            if k + prefetch < len(chunks):
                pending.append(self._submit(chunks[k + prefetch], size))
            yield batch

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
