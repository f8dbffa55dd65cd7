"""The near-copy stage (``task=dedup``, also run inside every stage's preparation).

Distinct images (one per pixel hash) go through :class:`~brainscan_exp.dedup.NearCopyFinder`
with the run's own embedding as a second candidate source; groups are cached under a key of the
images' pixel hashes, the finder's parameters and the finder's code. Writes ``duplicates.csv``
(file, group, kind exact|near, score) and a mosaic of the least certain confirmed pairs.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from brainscan_exp.artefacts import atomic_write, content_key
from brainscan_exp.data.catalogue import Catalogue
from brainscan_exp.features.vectors import VectorTable, as_matrix

log = logging.getLogger(__name__)


@dataclass
class NearCopies:
    near_groups: dict[str, str]  # pixel hash -> group id, for images with a near copy
    table: pd.DataFrame  # duplicates.csv: file, group, kind, score
    pairs: pd.DataFrame  # the finder's candidate pairs, with pixel hashes (for the mosaic)


def find_near_copies(
    cfg: DictConfig, catalogue: Catalogue, vectors: Mapping[str, np.ndarray] | None, feature_key: str | None = None
) -> NearCopies:
    """Near-copy groups of the catalogue's distinct images (cached); ``vectors`` (the run's
    embedding, keyed by pixel hash, ``feature_key`` its store key) add candidate pairs."""
    distinct = catalogue.files.drop_duplicates("pixel_hash").sort_values("pixel_hash").reset_index(drop=True)
    finder_cfg = OmegaConf.to_container(cfg.dedup.finder, resolve=True)
    use_embeddings = bool(cfg.dedup.use_embeddings) and vectors is not None
    key = content_key(
        {
            "hashes": distinct.pixel_hash.tolist(),
            "finder": finder_cfg,
            "embeddings": use_embeddings,
            "feature_key": feature_key if use_embeddings else None,
        },
        "brainscan_exp.dedup",
    )
    cache = Path(cfg.paths.cache_dir) / "dedup" / f"{key}.parquet"
    if cache.exists():
        pairs = pd.read_parquet(cache)
    else:
        finder = instantiate(cfg.dedup.finder)
        X = None
        if use_embeddings:  # a lazy view of the store's memmap when it is one (no n x d copy)
            hashes = distinct.pixel_hash.to_numpy()
            X = vectors.view(hashes) if isinstance(vectors, VectorTable) else as_matrix(vectors, hashes)
        # each confirmation shard is committed beside the cache entry: a killed run resumes
        finder.fit(distinct.path.tolist(), X, work_dir=cache.with_suffix(".parts"))
        pairs = finder.pairs_.assign(
            hash_i=distinct.pixel_hash.to_numpy()[finder.pairs_.i.to_numpy()],
            hash_j=distinct.pixel_hash.to_numpy()[finder.pairs_.j.to_numpy()],
        )
        atomic_write(cache, lambda tmp: pairs.to_parquet(tmp, index=False))
        shutil.rmtree(cache.with_suffix(".parts"), ignore_errors=True)  # the shards are in the cache now
        log.info(
            "near copies: %d candidate pairs, %d confirmed, in %.0f s (%s)",
            len(pairs),
            int(pairs.confirmed.sum()),
            finder.timings_.get("total", float("nan")),
            ", ".join(f"{k} {v:.1f} s" for k, v in finder.timings_.items() if k != "total"),
        )
    near_groups = _groups(pairs)
    return NearCopies(near_groups, duplicates_table(catalogue, near_groups, pairs), pairs)


def _groups(pairs: pd.DataFrame) -> dict[str, str]:
    from brainscan_exp.dedup import connected_groups

    confirmed = pairs[pairs.confirmed]
    hashes = sorted(set(confirmed.hash_i) | set(confirmed.hash_j))
    index = {h: k for k, h in enumerate(hashes)}
    edges = np.array(
        [[index[a], index[b]] for a, b in zip(confirmed.hash_i, confirmed.hash_j)], dtype=np.int64
    ).reshape(-1, 2)
    labels = connected_groups(len(hashes), edges)
    return {h: f"near{int(g)}" for h, g in zip(hashes, labels)}


def duplicates_table(catalogue: Catalogue, near_groups: dict[str, str], pairs: pd.DataFrame) -> pd.DataFrame:
    """Every file that shares its group with another file: exact copies (same pixels, score 1)
    and near copies (score: the best confirming score of the image's pairs)."""
    files = catalogue.files.assign(group=[near_groups.get(h, h) for h in catalogue.files.pixel_hash])
    files = files[files.groupby("group").file.transform("size") > 1]
    confirmed = pairs[pairs.confirmed]
    best = (
        pd.concat(
            [
                confirmed[["hash_i", "score"]].set_axis(["h", "score"], axis=1),
                confirmed[["hash_j", "score"]].set_axis(["h", "score"], axis=1),
            ]
        )
        .groupby("h")
        .score.max()
    )
    near = files.groupby("group").pixel_hash.transform("nunique") > 1
    out = files.assign(
        kind=np.where(near, "near", "exact"),
        score=np.where(near, best.reindex(files.pixel_hash).fillna(1.0).to_numpy(), 1.0),
    )
    out["group"] = out.group.astype("category").cat.codes
    return out.sort_values(["group", "file"])[["file", "group", "kind", "score", "label", "pixel_hash"]].reset_index(
        drop=True
    )


def log_near_copies(found: NearCopies, catalogue: Catalogue, tracker, out_dir: Path, n_mosaic: int = 12) -> None:
    from brainscan_exp.dedup import plot_uncertain_pairs

    found.table.to_csv(out_dir / "duplicates.csv", index=False)
    tracker.log_artifact(out_dir / "duplicates.csv", "data")
    paths = dict(zip(catalogue.files.pixel_hash, catalogue.files.path))
    hashes = sorted(set(found.pairs.hash_i) | set(found.pairs.hash_j))
    index = {h: k for k, h in enumerate(hashes)}
    pairs = found.pairs.assign(i=found.pairs.hash_i.map(index), j=found.pairs.hash_j.map(index))
    mosaic = plot_uncertain_pairs(
        [paths[h] for h in hashes], pairs, out_dir / "near_copies_least_certain.png", n=n_mosaic
    )
    tracker.log_artifact(mosaic, "data")
    near = found.table[found.table.kind == "near"]
    tracker.log_metrics(
        {
            "data/n_near_copy_groups": float(near.group.nunique()),
            "data/n_files_in_near_groups": float(len(near)),
            "data/n_files_in_groups": float(len(found.table)),
        }
    )


def run(cfg: DictConfig) -> dict[str, float]:
    from brainscan_exp.stages.common import log_config, open_run, output_dir, prepare

    out_dir = output_dir(cfg)
    with open_run(cfg, run_name=f"dedup-{cfg.dataset.name}") as tracker:
        log_config(tracker, cfg)
        prep = prepare(cfg, tracker, out_dir)  # runs the near-copy stage and logs its artefacts
        table = pd.read_csv(out_dir / "duplicates.csv")
        summary = {
            "n_groups": float(table.group.nunique()),
            "n_files_in_groups": float(len(table)),
            "n_near_files": float((table.kind == "near").sum()),
            "n_pool_copies_of_labelled": float((prep.catalogue.unlabelled_files().copy_of != "").sum()),
        }
        log.info("dedup: %s", summary)
        return summary
