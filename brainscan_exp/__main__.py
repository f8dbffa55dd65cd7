"""``python -m brainscan_exp``: the Hydra app (single runs and ``-m`` sweeps)."""

from __future__ import annotations

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

PROJECT_ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PROJECT_ROOT", str(PROJECT_ROOT))


@hydra.main(version_base="1.3", config_path=str(PROJECT_ROOT / "conf"), config_name="train")
def main(cfg: DictConfig) -> float | None:
    from brainscan_exp.tasks import run_task  # heavy imports after Hydra has parsed the command line

    return run_task(cfg)


if __name__ == "__main__":
    main()
