"""Every config group option and experiment composes; cheap targets instantiate."""

from __future__ import annotations

import pytest
from conftest import CONF_DIR
from hydra.utils import instantiate


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


GROUPS = [
    "dataset",
    "backbone",
    "preprocess",
    "features",
    "clusterer",
    "regime",
    "model",
    "trainer",
    "logger",
    "debug",
    "experiment",
]


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in _options(g)])
def test_every_option_composes(train_cfg, group, option):
    cfg = train_cfg(f"{group}={option}")
    from brainscan_exp.tasks import TASKS

    assert cfg.task in TASKS
    assert cfg.paths.output_dir


@pytest.mark.parametrize("option", _options("regime"))
def test_regimes_instantiate(train_cfg, option):
    cfg = train_cfg(f"regime={option}")
    regime = instantiate(cfg.regime.method)
    assert hasattr(regime, "fit") and hasattr(regime, "predict_proba")


@pytest.mark.parametrize("option", _options("backbone"))
def test_backbones_instantiate_without_weights(train_cfg, option):
    cfg = train_cfg(f"backbone={option}")
    backbone = instantiate(cfg.backbone)
    assert backbone.data_config["input_size"][-1] >= 64


def test_groups_cover_the_design_card():
    for group in [
        "dataset",
        "backbone",
        "clusterer",
        "regime",
        "trainer",
        "logger",
        "experiment",
        "debug",
        "paths",
        "hydra/launcher",
    ]:
        assert (CONF_DIR / group).is_dir(), group
    for option in ["oc", "demo"]:
        assert (CONF_DIR / "dataset" / f"{option}.yaml").exists()
    for option in ["cpu", "gpu", "ddp"]:
        assert (CONF_DIR / "trainer" / f"{option}.yaml").exists()
