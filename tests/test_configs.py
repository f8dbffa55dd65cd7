"""Every config group option and experiment composes; cheap targets instantiate."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from conftest import CONF_DIR
from hydra.utils import instantiate


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


GROUPS = [
    "task",
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
def test_every_option_composes_into_a_runnable_task(train_cfg, group, option):
    cfg = train_cfg(f"{group}={option}")
    assert cfg.hydra.runtime.choices[group] == option
    stage = instantiate(cfg.task.run)  # the stage function the CLI would call
    assert stage.func is importlib.import_module(f"brainscan_exp.stages.{cfg.task.name}").run


@pytest.mark.parametrize("option", _options("task"))
def test_each_task_names_its_stage(train_cfg, option):
    cfg = train_cfg(f"task={option}")
    assert cfg.task.name == option
    assert instantiate(cfg.task.run).func.__module__ == f"brainscan_exp.stages.{option}"


@pytest.mark.parametrize(
    "experiment,task", [("cv", "cv"), ("predict", "predict"), ("generalization", "generalization")]
)
def test_experiments_choose_their_task(train_cfg, experiment, task):
    assert train_cfg(f"experiment={experiment}").task.name == task


def test_debug_changes_speed_not_splits_or_rules(train_cfg):
    """debug=fast must not change what a run means (a predict run must keep its no-test split)."""
    plain, fast = train_cfg("experiment=predict"), train_cfg("experiment=predict", "debug=fast")
    for key in ("split", "operating_point", "regime", "target_sensitivity", "definition_of_done"):
        assert fast[key] == plain[key], key


def test_epochs_have_one_home(train_cfg):
    cfg = train_cfg("regime=semi", "budget.finetune_epochs=7", "budget.pretrain_epochs=3")
    regime = instantiate(cfg.regime.method)
    assert (regime.finetune_epochs, regime.pretrain_epochs) == (7, 3)


@pytest.mark.parametrize("option", ["knn", "linear_probe", "linear_probe_cv", "label_spreading", "self_training"])
def test_estimator_regimes_separate_separable_data(train_cfg, option):
    """Each scikit-learn regime, as configured, fits a fold and ranks held-out images."""
    from sklearn.metrics import roc_auc_score

    from brainscan_exp.regimes.base import FoldData, TrainContext

    rng = np.random.default_rng(0)
    y = np.tile([0, 1], 20)
    X = rng.normal(size=(40, 16)) + 3.0 * y[:, None]
    pool = rng.normal(size=(30, 16)) + 3.0 * np.tile([0, 1], 15)[:, None]
    data = FoldData(X[:30], y[:30], X[30:30], y[30:30], pool)
    ctx = TrainContext(make_trainer=None, make_module=None, seed=0)
    regime = instantiate(train_cfg(f"regime={option}").regime.method).fit(data, ctx)
    p = regime.predict_proba(X[30:])
    assert p.shape == (10,) and ((p >= 0) & (p <= 1)).all()
    assert roc_auc_score(y[30:], p) > 0.9


def test_knn_fits_with_fewer_labels_than_neighbours(train_cfg):
    from brainscan_exp.regimes.base import FoldData, TrainContext

    rng = np.random.default_rng(0)
    y = np.array([0, 1, 0, 1, 0, 1])
    X = rng.normal(size=(6, 4)) + 3.0 * y[:, None]
    regime = instantiate(train_cfg("regime=knn").regime.method)
    regime.fit(FoldData(X, y, X[:0], y[:0], X[:0]), TrainContext(make_trainer=None, make_module=None))
    assert regime.estimator_[-1].n_neighbors == 6 and regime.predict_proba(X).shape == (6,)


@pytest.mark.parametrize("option", _options("backbone"))
def test_backbones_instantiate_without_weights(train_cfg, option):
    cfg = train_cfg(f"backbone={option}")
    backbone = instantiate(cfg.backbone)
    assert backbone.data_config["input_size"][-1] >= 64


def test_the_design_card_sweep_composes(train_cfg):
    """`-m regime=sup,semi backbone=resnet18,resnet50`: each of its four jobs composes and builds."""
    for regime in ("sup", "semi"):
        for backbone in ("resnet18", "resnet50"):
            cfg = train_cfg(f"regime={regime}", f"backbone={backbone}", "backbone.weights=none")
            assert instantiate(cfg.backbone).name == backbone
            assert cfg.regime.name == regime
