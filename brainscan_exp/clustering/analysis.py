"""Cluster analysis: fit a clusterer, score it, map clusters to classes, check it against
confounds, sweep k, and write figures and tables (``stages/cluster`` is the pipeline step).

It is pure: it writes files to ``out_dir`` and returns a :class:`ClusterReport`; the
caller decides what to log to MLflow. It sees labels only through ``y_partial``, in which every
image whose label it may not use is -1. Evaluation labels must never be passed in: every
``*_train`` metric is computed on the visible labels alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone

from .confounds import confound_association
from .estimators import UNLABELLED, ClusterToClassMapper, ReducedClusterer
from .figures import plot_cluster_mosaic, plot_contingency, plot_k_sweep, plot_projections
from .metrics import agreement_scores, cluster_sizes, contingency_table, internal_scores
from .selection import select_k

__all__ = ["ClusterReport", "run_cluster_analysis"]

K_PARAMS = ("n_clusters", "n_components")
"""Clusterer parameters that set the number of clusters (KMeans & co., GaussianMixture)."""


@dataclass
class ClusterReport:
    """``metrics``: flat, MLflow-ready floats (NaN where undefined); ``tables``: the DataFrames
    also written as CSV; ``artifacts``: every file written; ``model``: the fitted clone."""

    metrics: dict[str, float]
    tables: dict[str, pd.DataFrame]
    artifacts: list[Path] = field(default_factory=list)
    model: ReducedClusterer | None = None


def _k_param(clusterer) -> str | None:
    params = clusterer.get_params(deep=False)
    return next((name for name in K_PARAMS if name in params), None)


def _cluster_table(labels: np.ndarray, mapper: ClusterToClassMapper | None) -> pd.DataFrame:
    """One row per cluster: size and, with labels, its class, labelled count and purity."""
    table = cluster_sizes(labels).to_frame()
    if mapper is not None:
        per_cluster = pd.DataFrame(
            {
                "n_labelled": mapper.n_labelled_,
                "class": mapper.cluster_classes_,
                "class_purity": mapper.class_purity_,
                "unmapped": np.isin(mapper.clusters_, mapper.unmapped_clusters_),
            },
            index=pd.Index(mapper.clusters_, name="cluster"),
        )
        table = table.join(per_cluster)
    return table


def run_cluster_analysis(
    X,
    y_partial,
    clusterer: ReducedClusterer,
    out_dir: str | Path,
    thumbnails: Sequence[np.ndarray] | None = None,
    confounds: pd.DataFrame | None = None,
    k_sweep: bool = True,
    random_state: int | None = 0,
    class_names: Sequence[str] | None = None,
    candidate_ks: Iterable[int] = range(2, 11),
    projection_methods: Sequence[str] = ("pca", "umap", "tsne"),
) -> ClusterReport:
    """Cluster features ``X`` (n, d) with a clone of ``clusterer`` and report on it.

    ``y_partial``: class per image, -1 where the stage may not see it (never the evaluation
    labels). ``thumbnails`` (greyscale images aligned with ``X``) add a mosaic per cluster;
    ``confounds`` (a :func:`confound_table`, rows aligned with ``X``) add the association
    table. The k-sweep refits only the inner clusterer on the already reduced data, for each
    k in ``candidate_ks`` below n, and only when it has an ``n_clusters`` / ``n_components``
    parameter. ``random_state`` seeds the projections and the mosaic sampling.
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y_partial).astype(int)
    if len(y) != len(X) or (confounds is not None and len(confounds) != len(X)):
        raise ValueError("X, y_partial and confounds must have one row per image")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    model = clone(clusterer).fit(X)
    labels = model.labels_
    labelled = y != UNLABELLED
    metrics: dict[str, float] = {
        "n_clusters": model.n_clusters_,
        "noise_share": model.noise_share_,
        "n_labelled": int(labelled.sum()),
        **internal_scores(model.embedding_, labels),
        **{f"{name}_train": value for name, value in agreement_scores(labels, y).items()},
    }
    tables: dict[str, pd.DataFrame] = {"contingency": contingency_table(labels, y, class_names)}

    mapper = ClusterToClassMapper().fit(labels, y) if labelled.any() else None
    tables["clusters"] = _cluster_table(labels, mapper)
    assignments = pd.DataFrame({"cluster": labels, "y_partial": y})
    if mapper is not None:
        assignments["pseudo_label"] = mapper.transform(labels)
        metrics["n_unmapped_clusters"] = len(mapper.unmapped_clusters_)
        # share of the unlabelled images that receive a pseudo-label (not noise)
        pseudo_of_unlabelled = assignments["pseudo_label"].to_numpy()[~labelled]
        metrics["pseudo_label_coverage"] = (
            np.mean(pseudo_of_unlabelled != UNLABELLED) if pseudo_of_unlabelled.size else np.nan
        )
    tables["assignments"] = assignments

    association = confound_association(
        labels, confounds if confounds is not None else pd.DataFrame(index=range(len(X))), labels=y
    )
    tables["confound_association"] = association
    for name, row in association.iterrows():
        metrics[f"{row['measure']}_{name}"] = row["value"]
    metrics["n_confounds_flagged"] = int(association["flagged"].drop("label").sum())

    artifacts: list[Path] = []
    k_param = _k_param(model.clusterer)
    if k_sweep and k_param is not None:
        ks = [k for k in candidate_ks if k < len(X)]
        sweep = select_k(model.embedding_, y, ks, make=lambda k: clone(model.clusterer).set_params(**{k_param: k}))
        tables["k_sweep"] = sweep.table
        metrics["k_best"] = np.nan if sweep.best_k is None else sweep.best_k
        metrics.update({f"k_pick_{criterion}": k for criterion, k in sweep.picks.items()})
        artifacts.append(plot_k_sweep(sweep.table, out_dir / "k_sweep.png", best_k=sweep.best_k))

    names = dict(enumerate(class_names)) if class_names is not None else {}
    colourings = {
        "cluster": labels,
        "label (visible)": np.array(["unlabelled" if v == UNLABELLED else str(names.get(v, v)) for v in y]),
    }
    numeric = association[association["measure"] == "eta2"]["value"].dropna()
    if not numeric.empty:  # the confound the clusters follow most
        strongest = numeric.idxmax()
        colourings[strongest] = confounds[strongest].to_numpy()
    artifacts.append(
        plot_projections(
            model.embedding_,
            colourings,
            out_dir / "projections.png",
            projection_methods,
            random_state,
            standardise=False,  # the space that was clustered, as the clusterer saw it
        )
    )
    artifacts.append(plot_contingency(tables["contingency"], out_dir / "contingency.png"))
    if thumbnails is not None:
        artifacts.append(
            plot_cluster_mosaic(thumbnails, labels, out_dir / "cluster_mosaic.png", random_state=random_state)
        )

    for name, table in tables.items():
        path = out_dir / f"{name}.csv"
        table.to_csv(path)
        artifacts.append(path)
    metrics = {name: float(value) for name, value in metrics.items()}
    return ClusterReport(metrics=metrics, tables=tables, artifacts=artifacts, model=model)
