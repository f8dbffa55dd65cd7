"""The operating point from out-of-fold scores: every labelled image scored by a model that did
not see it, once per repeat; inner early-stopping splits never include the scored fold."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from brainscan_exp.regimes import EstimatorRegime, FoldData, Regime, TrainContext, out_of_fold_scores


def _fold(n=30, dim=4, seed=0) -> FoldData:
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(n // 2, int), np.zeros(n - n // 2, int)]
    X = rng.normal(size=(n, dim)) + y[:, None]
    return FoldData(X[:24], y[:24], X[24:], y[24:], rng.normal(size=(10, dim)))


class _Recorder(Regime):
    """Remembers which images it was fitted and validated on; scores an image by its first feature."""

    uses_validation = True
    seen: list[tuple[set, set]] = []

    def fit(self, data, ctx):
        self.seen.append(({tuple(x) for x in data.X_train}, {tuple(x) for x in data.X_val}))
        return self

    def predict_proba(self, X, paths=None):
        self.seen.append(({tuple(x) for x in X}, set()))
        return 1 / (1 + np.exp(-X[:, 0]))


def _ctx(tmp_path) -> TrainContext:
    return TrainContext(make_trainer=None, make_module=None, out_dir=tmp_path)


def test_every_training_image_is_scored_once_per_repeat(tmp_path):
    data = _fold()
    y, p = out_of_fold_scores(
        lambda: EstimatorRegime(LogisticRegression()), data, _ctx(tmp_path), n_splits=5, n_repeats=3
    )
    assert len(y) == len(p) == 30 and np.isfinite(p).all()  # one score per image: the mean over repeats
    assert (y == np.r_[data.y_train, data.y_val]).all()
    _, p_once = out_of_fold_scores(
        lambda: EstimatorRegime(LogisticRegression()), data, _ctx(tmp_path), n_splits=5, n_repeats=1
    )
    assert not np.allclose(p, p_once)  # the other repeats' models moved the mean


def test_scored_fold_is_never_fitted_or_validated_on(tmp_path):
    _Recorder.seen = []
    out_of_fold_scores(_Recorder, _fold(), _ctx(tmp_path), n_splits=5, n_repeats=1, val_size=0.25)
    fits, predictions = _Recorder.seen[0::2], _Recorder.seen[1::2]
    for (train, val), (scored, _) in zip(fits, predictions):
        assert val, "a regime that early-stops gets an inner validation split"
        assert not scored & train and not scored & val


def test_train_stage_uses_out_of_fold_threshold(train_cfg):
    from mlflow import MlflowClient

    from brainscan_exp.stages.train import run

    cfg = train_cfg("split.test_size=0", "regime=linear_probe", "operating_point.source=oof")
    run(cfg)
    client = MlflowClient(cfg.logger.tracking_uri)
    (mlrun,) = client.search_runs([client.get_experiment_by_name(cfg.logger.experiment_name).experiment_id])
    n_labelled = cfg.dataset.generate.n_labelled_per_class * 2
    assert mlrun.data.metrics["operating_point/n_scores"] == n_labelled
    assert mlrun.data.metrics["operating_point/calibration_sensitivity"] >= cfg.target_sensitivity


def test_label_spreading_gives_no_nan_for_an_unreached_component():
    """A cluster of points that no labelled image's kNN graph reaches: 0/0 in scikit-learn, here
    the uniform distribution (no information), so the metrics downstream never see a NaN."""
    from brainscan_exp.semi import SpreadingPseudoLabeler

    rng = np.random.default_rng(0)
    near = rng.normal(size=(20, 3))
    far = rng.normal(size=(12, 3)) + 100.0  # its own component, no label inside
    X = np.r_[near, far]
    y = np.r_[np.tile([0, 1], 5), np.full(10, -1), np.full(12, -1)]
    model = SpreadingPseudoLabeler(n_neighbors=5, n_components=None).fit(X, y)
    proba = model.predict_proba(np.r_[far[:3] + 0.01, near[:3]])
    assert np.isfinite(proba).all() and np.allclose(proba.sum(1), 1)
    assert np.allclose(proba[:3], 0.5)
    assert (model.transduction_[20:] == -1).all()
