"""The near-copy stage inside a run: a mirrored copy of a labelled image planted in the pool is
found, leaves the pool, and takes its twin's label in predictions.csv."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra.utils import instantiate
from omegaconf import open_dict
from PIL import Image


@pytest.mark.slow
def test_planted_mirror_of_a_labelled_image_is_known_not_predicted(train_cfg, tmp_path):
    from brainscan_exp.stages.predict import run

    cfg = train_cfg("experiment=predict", "operating_point.n_boot=0")
    instantiate(cfg.dataset)  # the demo data
    root = tmp_path / "data"
    shutil.copytree(cfg.dataset.root, root)
    twin = sorted((root / "avec_labels" / "cancer").glob("*.jpg"))[3]
    mirrored = np.asarray(Image.open(twin).convert("L"))[:, ::-1]
    gamma = (255 * (mirrored / 255.0) ** 0.8).astype(np.uint8)  # mirrored and re-contrasted
    Image.fromarray(gamma).convert("RGB").save(root / "sans_label" / "zz_mirror.jpg", quality=92)
    with open_dict(cfg):
        cfg.dataset.root = str(root)
        cfg.dataset.truth = str(root / "truth.csv")
    run(cfg)

    out = Path(cfg.paths.output_dir)
    duplicates = pd.read_csv(out / "duplicates.csv")
    near = duplicates[duplicates.kind == "near"]
    group = near[near.file == "sans_label/zz_mirror.jpg"].group
    assert len(group) == 1
    assert f"avec_labels/cancer/{twin.name}" in set(near[near.group == group.iloc[0]].file)
    predictions = pd.read_csv(out / "predictions.csv", keep_default_na=False).set_index("file")
    row = predictions.loc["sans_label/zz_mirror.jpg"]
    assert row.near_copy_of == f"avec_labels/cancer/{twin.name}"
    assert row.label_source == "copy" and row.label_pred == "cancer" and row.triage == "cancer"
    assert (predictions.label_source == "copy").sum() == 2  # and the demo's planted pixel copy
