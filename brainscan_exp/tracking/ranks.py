"""Which process of a distributed job this is, before and after Lightning sets its ranks up.

Under DDP every rank runs the whole job (torchrun, ``srun``, or Lightning re-executing the
command with ``LOCAL_RANK`` set): only rank 0 may open the MLflow run or extract features, and
the others must know it before any Trainer exists, so the rank is read from the environment
that every launcher sets, then from ``torch.distributed`` and Lightning once they are up.
"""

from __future__ import annotations

import os


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    return int(value) if value.lstrip("-").isdigit() else None


def global_rank() -> int:
    """This process's global rank (0 when not distributed).

    Order: an initialised ``torch.distributed``; ``RANK`` (torchrun, Lightning); ``SLURM_PROCID``
    (one task per rank under ``srun``); ``NODE_RANK``/``LOCAL_RANK`` (Lightning's own launcher,
    which sets no ``RANK`` in the processes it starts); Lightning's ``rank_zero_only.rank``.
    """
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return int(dist.get_rank())
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    for name in ("RANK", "SLURM_PROCID"):
        value = _env_int(name)
        if value is not None:
            return value
    local, node = _env_int("LOCAL_RANK"), _env_int("NODE_RANK") or _env_int("GROUP_RANK")
    if local is not None or node:
        local = local or 0
        per_node = _env_int("LOCAL_WORLD_SIZE") or local + 1  # unknown: still > 0 off node 0
        return (node or 0) * per_node + local
    try:
        from lightning.pytorch.utilities import rank_zero_only

        return int(getattr(rank_zero_only, "rank", 0) or 0)
    except ImportError:  # pragma: no cover
        return 0


def is_rank_zero() -> bool:
    return global_rank() == 0
