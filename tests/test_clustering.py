"""Tests of brainscan_exp.clustering on small generated data (blobs, synthetic 'brain' slices)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf
from sklearn.cluster import HDBSCAN, AgglomerativeClustering, KMeans
from sklearn.datasets import make_blobs

from brainscan_exp.clustering import (
    AutoEpsDBSCAN,
    ClusterToClassMapper,
    ReducedClusterer,
    agreement_scores,
    cluster_sizes,
    confound_association,
    confound_table,
    contingency_table,
    estimate_orientation,
    image_confounds,
    internal_scores,
    make_reduction,
    otsu_threshold,
    run_cluster_analysis,
    select_k,
)

CONFIGS = sorted((Path(__file__).parents[1] / "conf" / "clusterer").glob("*.yaml"))


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=120, n_features=40, centers=2, cluster_std=2.0, random_state=0)
    return X, y


def hide(y_full: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """What the clustering stage is given: the labels of ``visible`` images, -1 elsewhere."""
    return np.where(visible, y_full, -1)


def brain_slices(n: int = 60, size: int = 32, seed: int = 0):
    """Synthetic axial slices: a grey ellipse ('head') on black; label 1 adds a small bright
    spot ('tumour'); every other image is 60 grey levels brighter (the planted confound,
    independent of the label)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:size, :size]
    head = ((rows - size / 2) / (0.42 * size)) ** 2 + ((cols - size / 2) / (0.32 * size)) ** 2 <= 1
    labels = rng.integers(0, 2, n)
    brighter = np.arange(n) % 2 == 1
    images = []
    for label, bright in zip(labels, brighter):
        image = np.where(head, 100.0 + 60.0 * bright, 0.0) + rng.normal(0, 5, head.shape) * head
        if label:
            r, c = rng.integers(size // 2 - 5, size // 2 + 5, 2)
            image[(rows - r) ** 2 + (cols - c) ** 2 <= 4] += 40
        images.append(np.clip(image, 0, 255).astype(np.uint8))
    return images, labels, brighter


# ---------------------------------------------------------------- configs and estimators


def test_configs_found():
    assert {p.stem for p in CONFIGS} >= {
        "kmeans",
        "minibatch_kmeans",
        "gmm",
        "agglomerative",
        "hdbscan",
        "spectral",
        "dbscan",
    }


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_instantiates_fits_and_predicts(path, blobs):
    X, y = blobs
    cfg = OmegaConf.load(path)
    assert set(cfg) == {"_target_", "clusterer", "reduction", "n_components", "random_state"}
    model = instantiate(cfg)
    assert isinstance(model, ReducedClusterer)
    labels = model.fit_predict(X)
    assert model.n_clusters_ >= 2
    assert model.embedding_.shape[0] == len(X)
    assert agreement_scores(labels, y)["ari"] > 0.9
    # new points: predicting the training data reproduces the fitted labels
    np.testing.assert_array_equal(model.predict(X), labels)


def test_config_seed_reaches_inner_clusterer():
    cfg = OmegaConf.load(CONFIGS[0].with_name("kmeans.yaml"))
    cfg.random_state = 7
    assert instantiate(cfg).clusterer.random_state == 7


def test_make_reduction_variants(blobs):
    X, _ = blobs
    assert make_reduction("none").fit_transform(X).shape == X.shape
    assert make_reduction("pca", 5).fit_transform(X).shape == (len(X), 5)
    assert make_reduction("pca", 500, max_components=min(X.shape)).fit_transform(X).shape[1] == 40
    kept = make_reduction("pca", 0.5).fit(X).named_steps["reduce"]
    assert kept.explained_variance_ratio_.sum() >= 0.5
    with pytest.raises(ValueError, match="reduction must be"):
        make_reduction("tsne")
    with pytest.raises(ValueError, match="integer"):
        make_reduction("umap", 0.9)


@pytest.mark.slow
def test_umap_reduction(blobs):
    X, y = blobs
    model = ReducedClusterer(KMeans(2, n_init=10, random_state=0), reduction="umap", n_components=3).fit(X)
    assert model.embedding_.shape == (len(X), 3)
    assert agreement_scores(model.labels_, y)["ari"] > 0.9


def test_auto_eps_dbscan_on_blobs():
    X, _ = make_blobs(n_samples=150, n_features=2, centers=3, cluster_std=0.5, random_state=1)
    model = AutoEpsDBSCAN(min_samples=5).fit(X)
    assert model.eps_ > 0
    assert len(set(model.labels_) - {-1}) >= 2
    core = model.core_sample_indices_
    np.testing.assert_array_equal(model.predict(X[core]), model.labels_[core])
    assert model.predict(X.max(axis=0, keepdims=True) + 100)[0] == -1


def test_predict_falls_back_to_nearest_training_point(blobs):
    X, _ = blobs
    for clusterer in (HDBSCAN(min_cluster_size=10, copy=True), AgglomerativeClustering(2)):
        model = ReducedClusterer(clusterer, reduction="pca", n_components=5).fit(X)
        assert not hasattr(model.clusterer_, "predict")
        jittered = X + np.random.default_rng(0).normal(0, 1e-3, X.shape)
        np.testing.assert_array_equal(model.predict(jittered), model.labels_)


# ---------------------------------------------------------------- cluster -> class mapping


def test_mapper_majority_purity_unmapped_and_noise():
    clusters = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, -1, -1])
    y = np.array([1, 1, 0, -1, 0, 0, -1, -1, -1, 1, 1])
    mapper = ClusterToClassMapper().fit(clusters, y)
    assert mapper.mapping_ == {0: 1, 1: 0, 2: 1}  # cluster 2: no labelled member -> overall majority (1)
    np.testing.assert_array_equal(mapper.unmapped_clusters_, [2])
    np.testing.assert_allclose(mapper.class_purity_, [2 / 3, 1.0, np.nan])
    np.testing.assert_array_equal(mapper.transform([0, 1, 2, -1, 5]), [1, 0, 1, -1, -1])
    strict = ClusterToClassMapper(unmapped="none").fit(clusters, y)
    assert strict.mapping_[2] == -1
    with pytest.raises(ValueError, match="no labelled point"):
        ClusterToClassMapper().fit(clusters, np.full_like(y, -1))


def test_hidden_labels_change_nothing(blobs, tmp_path):
    """Permuting (or corrupting) the labels of the hidden images cannot change the mapping,
    the pseudo-labels or any reported metric: the stage only ever receives y_partial."""
    X, y_full = blobs
    visible = np.random.default_rng(0).random(len(y_full)) < 0.2
    y_permuted = y_full.copy()
    y_permuted[~visible] = np.random.default_rng(1).permutation(y_full[~visible])
    y_flipped = np.where(visible, y_full, 1 - y_full)

    clusters = KMeans(3, n_init=10, random_state=0).fit_predict(X)
    reference = ClusterToClassMapper().fit(clusters, hide(y_full, visible))
    model = ReducedClusterer(KMeans(2, n_init=10, random_state=0), reduction="pca", n_components=5)
    kwargs = dict(k_sweep=True, candidate_ks=range(2, 4), projection_methods=("pca",))
    report = run_cluster_analysis(X, hide(y_full, visible), model, tmp_path / "ref", **kwargs)
    for other in (y_permuted, y_flipped):
        mapper = ClusterToClassMapper().fit(clusters, hide(other, visible))
        assert mapper.mapping_ == reference.mapping_
        np.testing.assert_array_equal(mapper.transform(clusters), reference.transform(clusters))
        np.testing.assert_array_equal(mapper.class_purity_, reference.class_purity_)
        again = run_cluster_analysis(X, hide(other, visible), model, tmp_path / "other", **kwargs)
        assert again.metrics == pytest.approx(report.metrics, nan_ok=True)
        pd.testing.assert_frame_equal(again.tables["assignments"], report.tables["assignments"])

    # ...whereas the visible labels do matter (the test above is not vacuous)
    y_visible_flipped = np.where(visible, 1 - y_full, y_full)
    flipped = ClusterToClassMapper().fit(clusters, hide(y_visible_flipped, visible))
    assert flipped.mapping_ != reference.mapping_


# ---------------------------------------------------------------- metrics and k selection


def test_internal_and_agreement_scores():
    X = np.array([[0.0], [0.1], [5.0], [5.1], [100.0]])
    scores = internal_scores(X, [0, 0, 1, 1, -1])  # the noise outlier is ignored
    assert scores["silhouette"] > 0.9
    assert all(np.isnan(v) for v in internal_scores(X, [0, 0, 0, 0, -1]).values())
    agreement = agreement_scores([0, 0, 1, 1, 1], [0, 0, 1, -1, -1])
    assert agreement == {"ari": 1.0, "nmi": 1.0, "purity": 1.0}
    assert np.isnan(agreement_scores([0, 1], [-1, -1])["ari"])


def test_contingency_table_and_sizes():
    table = contingency_table([0, 0, 1, -1], [0, -1, 1, 1], class_names=("normal", "cancer"))
    assert list(table.columns) == ["normal", "cancer", "unlabelled"]
    assert table.loc[0].tolist() == [1, 0, 1]
    assert cluster_sizes([1, 1, 0, -1]).to_dict() == {-1: 1, 0: 1, 1: 2}


def test_select_k_picks_k_by_labels():
    X, y = make_blobs(n_samples=150, n_features=5, centers=3, cluster_std=1.0, random_state=2)
    y_partial = hide(y, np.random.default_rng(0).random(len(y)) < 0.3)
    sweep = select_k(X, y_partial, candidate_ks=range(2, 6))
    assert list(sweep.table.index) == [2, 3, 4, 5]
    assert {"silhouette", "davies_bouldin", "calinski_harabasz", "ari", "nmi", "purity"} <= set(sweep.table)
    assert set(sweep.picks) == {"silhouette", "davies_bouldin", "calinski_harabasz", "ari", "nmi"}
    assert sweep.best_k == 3


# ---------------------------------------------------------------- confounds


def test_image_confounds_of_a_synthetic_slice():
    images, _, _ = brain_slices(n=1)
    row = image_confounds(images[0])
    assert 0.3 < row["fg_fraction"] < 0.6
    assert row["bbox_aspect"] > 1.1  # the head is taller than wide
    assert row["orientation"] == "axial"
    blank = image_confounds(np.zeros((16, 16), np.uint8))
    assert blank["fg_fraction"] == 0 and blank["orientation"] == "unknown"
    assert otsu_threshold(np.array([[10, 10], [200, 200]], np.uint8)) in range(10, 200)
    with pytest.raises(ValueError, match="uint8"):
        image_confounds(np.zeros((4, 4, 3), np.uint8))


@pytest.mark.parametrize(
    ("lr", "ud", "expected"),
    [
        (0.95, 0.9, "axial"),
        (0.95, 0.3, "coronal"),
        (0.2, 0.9, "sagittal"),
        (0.7, 0.9, "unknown"),
        (np.nan, 0.9, "unknown"),
    ],
)
def test_orientation_heuristic(lr, ud, expected):
    assert estimate_orientation(lr, ud) == expected


def test_planted_intensity_confound_is_flagged():
    images, labels, brighter = brain_slices(n=60)
    confounds = confound_table(images, ids=[f"img{i}" for i in range(60)])
    X = np.stack([image.ravel() for image in images]).astype(float)
    clusters = KMeans(2, n_init=10, random_state=0).fit_predict(X)
    assert abs(agreement_scores(clusters, brighter.astype(int))["ari"]) == pytest.approx(1.0)

    association = confound_association(clusters, confounds, labels=hide(labels, np.arange(60) < 30))
    assert association.loc["mean_intensity", "measure"] == "eta2"
    assert association.loc["mean_intensity", "value"] > 0.9
    assert association.loc["mean_intensity", "flagged"]
    assert association.loc["orientation", "measure"] == "cramers_v"
    assert not association.loc["label", "flagged"]  # the clusters follow brightness, not the label


# ---------------------------------------------------------------- the stage


def test_run_cluster_analysis_writes_outputs(tmp_path):
    images, labels, _ = brain_slices(n=60)
    X = np.stack([image[::2, ::2].ravel() for image in images]).astype(float)
    y_partial = hide(labels, np.arange(60) < 20)
    model = instantiate(OmegaConf.load(CONFIGS[0].with_name("kmeans.yaml")))
    report = run_cluster_analysis(
        X,
        y_partial,
        model,
        tmp_path,
        thumbnails=images,
        confounds=confound_table(images),
        class_names=("normal", "cancer"),
        candidate_ks=range(2, 5),
        projection_methods=("pca", "tsne"),
    )
    expected = {
        "n_clusters",
        "noise_share",
        "n_labelled",
        "silhouette",
        "davies_bouldin",
        "calinski_harabasz",
        "ari_train",
        "nmi_train",
        "purity_train",
        "n_unmapped_clusters",
        "pseudo_label_coverage",
        "cramers_v_label",
        "eta2_mean_intensity",
        "n_confounds_flagged",
        "k_best",
        "k_pick_silhouette",
    }
    assert expected <= set(report.metrics)
    assert all(isinstance(v, float) for v in report.metrics.values())
    assert all(np.isfinite(report.metrics[key]) for key in expected)
    assert report.metrics["n_labelled"] == 20
    assert report.metrics["eta2_mean_intensity"] > 0.5  # planted confound found by the stage too
    for name in (
        "projections.png",
        "contingency.png",
        "cluster_mosaic.png",
        "k_sweep.png",
        "contingency.csv",
        "clusters.csv",
        "assignments.csv",
        "confound_association.csv",
        "k_sweep.csv",
    ):
        assert (tmp_path / name).stat().st_size > 0
    assert set(report.artifacts) == set(tmp_path.iterdir())
    assert not hasattr(model, "labels_")  # the caller's estimator is left unfitted


def test_run_cluster_analysis_without_k_parameter_skips_sweep(tmp_path, blobs):
    X, y = blobs
    model = ReducedClusterer(AutoEpsDBSCAN(), reduction="pca", n_components=5)
    y_partial = hide(y, np.arange(len(y)) < 30)
    report = run_cluster_analysis(X, y_partial, model, tmp_path, projection_methods=("pca",))
    assert "k_sweep" not in report.tables and "k_best" not in report.metrics
    assert report.metrics["n_clusters"] >= 2
