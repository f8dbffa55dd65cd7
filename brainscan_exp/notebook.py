"""Using the framework from a notebook: compose the same config the CLI would, then call a stage.

    cfg = compose_config(["experiment=cv", "dataset=oc"])
    metrics = brainscan_exp.stages.cv.run(cfg)   # cached cells make a rerun instant
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def compose_config(overrides: list[str] | None = None, output_dir: str | Path | None = None) -> DictConfig:
    """The ``train`` config with ``overrides``, its output folder under ``logs/notebooks/``."""
    os.environ.setdefault("PROJECT_ROOT", str(PROJECT_ROOT))
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides or []), return_hydra_config=True)
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")  # unique per call
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir or PROJECT_ROOT / "logs" / "notebooks" / f"{cfg.task}-{stamp}")
    HydraConfig().set_config(cfg)
    return cfg
