"""The features stage on its own: fill the embedding store for a dataset and backbone, export
it as Parquet for notebooks, and log the preprocessing with a before/after grid."""

from __future__ import annotations

import pandas as pd
from omegaconf import DictConfig

from brainscan_exp.features.figures import plot_preprocessing_grid
from brainscan_exp.preprocessing import ImageTransform
from brainscan_exp.stages.common import log_config, open_run, output_dir, prepare


def run(cfg: DictConfig) -> dict[str, float]:
    out_dir = output_dir(cfg)
    with open_run(cfg, run_name=f"features-{cfg.backbone.name}-{cfg.dataset.name}") as tracker:
        log_config(tracker, cfg)
        prep = prepare(cfg, tracker, out_dir)
        tracker.log_params({f"preprocess_resolved.{k}": v for k, v in prep.backbone.data_config.items()})
        cat = prep.catalogue
        files = cat.files.assign(split=["labelled" if y >= 0 else "pool" for y in cat.files.label])
        table = files[["file", "pixel_hash", "split", "label"]].sort_values("file")
        parquet = prep.store.export(table, out_dir / "features.parquet")
        tracker.log_artifact(parquet, "features")
        sample = pd.concat([cat.labelled[cat.labelled.label == c].head(2) for c in (1, 0)] + [cat.pool.head(2)])
        grid = plot_preprocessing_grid(
            sample.path.tolist(),
            ImageTransform(prep.backbone.data_config, prep.mri),
            out_dir / "preprocessing_grid.png",
            titles=[f.split("/")[-2] for f in sample.file],
        )
        tracker.log_artifact(grid, "features")
        return {"n_images": float(len(table)), "dim": float(prep.dim)}
