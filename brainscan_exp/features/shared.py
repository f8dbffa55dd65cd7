"""One extraction per distributed job: rank 0 computes, the other ranks wait, then read.

Every DDP rank runs ``prepare``; without this, N ranks would embed the same images N times and
race on the store. ``extract_once`` wraps the extraction call itself: rank 0 runs it and then
marks it done; other ranks wait for the mark and then run the same call, which by then only reads
the cache (if something is still missing it is computed: slower, never wrong).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from brainscan_exp.artefacts import atomic_write
from brainscan_exp.tracking.ranks import global_rank

log = logging.getLogger(__name__)
T = TypeVar("T")


def _failure_marker(done_marker: Path) -> Path:
    return done_marker.with_name(done_marker.name + ".failed")


def _write_atomic(path: Path, payload: dict) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(payload)))


def _distributed():
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover
        return None
    return dist if dist.is_available() and dist.is_initialized() else None


def extract_once(
    run_extraction: Callable[[], T],
    done_marker: str | Path,
    timeout_s: float = 24 * 3600,
    poll_s: float = 2.0,
) -> T:
    """Rank 0 runs ``run_extraction`` and marks ``done_marker``; other ranks wait for it, then run
    it too (a cache read). With ``torch.distributed`` initialised a barrier replaces the file.

    ``done_marker`` must name what is extracted (store key + dataset fingerprint): a marker left
    by an earlier job for the same data is a valid "done". A failure on rank 0 writes
    ``<marker>.failed`` so waiting ranks fail at once instead of at ``timeout_s``.
    """
    done_marker = Path(done_marker)
    failed = _failure_marker(done_marker)
    rank, dist = global_rank(), _distributed()
    if rank == 0:
        failed.unlink(missing_ok=True)
        try:
            result = run_extraction()
        except BaseException as exc:
            _write_atomic(failed, {"error": "".join(traceback.format_exception_only(type(exc), exc)).strip()})
            raise
        _write_atomic(done_marker, {"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()})
        if dist is not None:
            dist.barrier()
        return result
    if dist is not None:
        dist.barrier()
    else:
        _wait_for(done_marker, failed, timeout_s, poll_s, rank)
    return run_extraction()


def _wait_for(done_marker: Path, failed: Path, timeout_s: float, poll_s: float, rank: int) -> None:
    started = time.time()
    log.info("rank %d: waiting for rank 0's extraction (%s)", rank, done_marker)
    while not done_marker.exists():
        # a failure marker older than this wait is a previous job's: rank 0 removes it when it starts
        if failed.exists() and failed.stat().st_mtime >= started - 5:
            raise RuntimeError(f"rank 0's extraction failed: {json.loads(failed.read_text())['error']}")
        if time.time() - started > timeout_s:
            raise TimeoutError(f"rank {rank}: no {done_marker} after {timeout_s:.0f} s (rank 0's extraction)")
        time.sleep(poll_s)
