"""Using the framework from a notebook: compose the same config the CLI would, then call a stage.

cfg = compose_config(["experiment=cv", "dataset=oc"])
metrics = brainscan_exp.stages.cv.run(cfg)   # cached cells make a rerun instant
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from hydra import compose
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from brainscan_exp.config import initialize_configs, set_project_root
from brainscan_exp.console import quiet_hydra_startup, quiet_third_party


def compose_config(overrides: list[str] | None = None, output_dir: str | Path | None = None) -> DictConfig:
    """The ``train`` config with ``overrides``, its output folder under ``logs/notebooks/``."""
    set_project_root()
    quiet_hydra_startup()
    quiet_third_party()  # no Lightning banners or tips in a cell's output (notebooks are read)
    GlobalHydra.instance().clear()
    with initialize_configs():
        cfg = compose("train", overrides=list(overrides or []), return_hydra_config=True)
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")  # unique per call
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir or Path(cfg.paths.log_dir) / "notebooks" / f"{cfg.task.name}-{stamp}")
    HydraConfig().set_config(cfg)
    return cfg
