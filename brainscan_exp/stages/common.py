"""What every stage starts with: the backbone, the dataset catalogue and its cached embeddings."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from brainscan_exp.artefacts import content_key
from brainscan_exp.core.embed import embed
from brainscan_exp.data.catalogue import Catalogue
from brainscan_exp.data.splits import make_split
from brainscan_exp.features.runtimes import runtime_info
from brainscan_exp.features.shared import extract_once
from brainscan_exp.features.store import EmbeddingStore
from brainscan_exp.features.vectors import RowView, VectorTable
from brainscan_exp.models.backbones import Backbone
from brainscan_exp.preprocessing import MRIPreprocess
from brainscan_exp.tracking.mlflow_run import MlflowRun, flatten_params, git_commit, resolved_job_config

log = logging.getLogger(__name__)

KEY_PARAMS = (
    "dataset",
    "backbone",
    "preprocess",
    "regime",
    "clusterer",
    "model",
    "split",
    "seed",
    "target_sensitivity",
    "cv",
)


@dataclass
class Prepared:
    catalogue: Catalogue
    backbone: Backbone
    model: object
    mri: MRIPreprocess
    store: EmbeddingStore
    vectors: VectorTable  # pixel hash -> vector (a read-only mapping over one float32 matrix)

    def X(self, frame: pd.DataFrame) -> np.ndarray:
        """Embeddings of ``frame``'s rows (by pixel hash), in order."""
        if len(frame) == 0:
            return np.zeros((0, self.dim), np.float32)
        return self.vectors.take(frame.pixel_hash.to_numpy())

    def view(self, frame: pd.DataFrame) -> RowView:
        """``frame``'s rows of the store matrix as a lazy array-like (no copy): a pool of millions
        is read chunk by chunk by whoever scores it (:mod:`brainscan_exp.core.stream`)."""
        return self.vectors.view(frame.pixel_hash.to_numpy())

    @property
    def dim(self) -> int:
        return self.vectors.dim


def sweep_tag() -> str:
    """Jobs of one multirun share the sweep directory: it tags them for side-by-side comparison."""
    try:
        hc = HydraConfig.get()
    except ValueError:
        return "none"
    return str(hc.sweep.dir) if getattr(hc.mode, "name", None) == "MULTIRUN" else "single-run"


def open_run(cfg: DictConfig, run_name: str | None = None, **tags) -> MlflowRun:
    """The job's MLflow run, tagged with the sweep, git commit and seed; config logged on entry."""
    base = {
        "sweep": sweep_tag(),
        "git_commit": git_commit(cfg.paths.root_dir),
        "seed": cfg.seed,
        "task": cfg.task.name,
        "dataset": cfg.dataset.name,
        "backbone": cfg.backbone.name,
    }
    return MlflowRun(cfg.logger.tracking_uri, cfg.logger.experiment_name, run_name or cfg.logger.run_name, base | tags)


def log_config(tracker: MlflowRun, cfg: DictConfig) -> None:
    tracker.log_config(cfg)
    resolved = resolved_job_config(cfg)
    tracker.log_params(flatten_params({k: resolved[k] for k in KEY_PARAMS if k in resolved}))


def prepare(cfg: DictConfig, tracker: MlflowRun, out_dir: Path) -> Prepared:
    """Backbone (built first: a missing weight fails fast), catalogue, then the features stage."""
    backbone: Backbone = instantiate(cfg.backbone)
    model = backbone.build()
    catalogue: Catalogue = instantiate(cfg.dataset)
    tracker.set_tags({"dataset_fingerprint": catalogue.fingerprint})
    tracker.log_dataset(
        catalogue.files[["file", "pixel_hash", "label"]],
        name=cfg.dataset.name,
        digest=catalogue.fingerprint,
        source=str(catalogue.root),
    )
    tracker.log_metrics({f"data/{k}": v for k, v in catalogue.summary().items()})
    catalogue.duplicates.to_csv(out_dir / "duplicates.csv", index=False)
    (out_dir / "dataset_summary.json").write_text(json.dumps(catalogue.summary(), indent=2))
    tracker.log_artifact(out_dir / "duplicates.csv", "data")
    tracker.log_artifact(out_dir / "dataset_summary.json", "data")
    if len(catalogue.bad_files):
        catalogue.bad_files.to_csv(out_dir / "bad_files.csv", index=False)
        tracker.log_artifact(out_dir / "bad_files.csv", "data")

    mri: MRIPreprocess = instantiate(cfg.preprocess)
    extractor = instantiate(cfg.features)
    paths_by_hash = dict(zip(catalogue.files.pixel_hash, catalogue.files.path))
    extra_cfg = cfg.get("embedding", {}).get("extra_backbones", [])

    def embed_all():
        store, stats = extractor.run(paths_by_hash, backbone, mri, model)
        vectors, keys = store.table(), [store.key]
        if extra_cfg:  # concatenated after the main backbone's vectors (in memory, this run's images)
            more, more_keys = embed(paths_by_hash, [instantiate(b) for b in extra_cfg], mri, extractor)
            vectors = vectors.hstack([more], hashes=list(more))
            keys += more_keys
        return store, stats, vectors, keys

    # under DDP every rank runs this: rank 0 embeds, the others wait for its mark, then read the store
    done = content_key(
        {
            "store": extractor.store_for(backbone, mri, model, paths_by_hash).key,
            "extra": OmegaConf.to_container(extra_cfg) if extra_cfg else [],
            "data": catalogue.fingerprint,
        }
    )
    store, stats, vectors, keys = extract_once(embed_all, Path(extractor.cache_dir) / "done" / done)
    tracker.set_tags({"feature_key": "+".join(keys)})
    tracker.log_metrics({f"features/{k}": v for k, v in stats.items() if isinstance(v, (int, float))})
    tracker.log_params(
        {f"features_resolved.{k}": v for k, v in runtime_info(stats["runtime"], stats["precision"]).items()}
    )
    if cfg.get("dedup", {}).get("enabled", False):
        catalogue = with_near_copies(cfg, catalogue, vectors, store.key, tracker, out_dir)
    return Prepared(catalogue, backbone, model, mri, store, vectors)


def with_near_copies(
    cfg: DictConfig, catalogue: Catalogue, vectors, feature_key: str | None, tracker=None, out_dir: Path | None = None
) -> Catalogue:
    """The near-copy stage: groups found (cached), logged, and applied to the catalogue."""
    from brainscan_exp.stages.dedup import find_near_copies, log_near_copies

    found = find_near_copies(cfg, catalogue, vectors, feature_key)
    if tracker is not None:
        log_near_copies(found, catalogue, tracker, out_dir)
    near = catalogue.with_near_copies(found.near_groups)
    if tracker is not None:
        copies = near.unlabelled_files()
        tracker.log_metrics(
            {
                "data/n_pool_copies_of_labelled_near": float((copies.copy_of != "").sum()),
                "data/n_pool_distinct_new": float(len(near.pool)),
            }
        )
    return near


def split_for(cfg: DictConfig, catalogue: Catalogue) -> pd.DataFrame:
    """The run's labelled split (``split`` group): a group-aware holdout, or fold k of the repeated CV."""
    return make_split(catalogue.labelled, fold=cfg.split.fold, **{k: v for k, v in cfg.split.items() if k != "fold"})


def output_dir(cfg: DictConfig) -> Path:
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out
