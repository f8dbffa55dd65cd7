"""The precision choice (core/precision.py) on hand-made tables: the fastest precision within the
tolerance of fp32 on every worst case, and never one whose review benchmark misses more tumours."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from brainscan_exp.core.precision import choose_precision
from brainscan_exp.stages.generalization import embedding_candidate, review_missed


def _rows(**over) -> pd.DataFrame:
    """fp32 (slowest), bf16, int8 (fastest); each keyword sets one precision's fields."""
    base = {
        "fp32": dict(worst_auc=0.903, worst_sensitivity=0.883, worst_specificity=0.562, images_per_s=100.0),
        "bf16": dict(worst_auc=0.902, worst_sensitivity=0.880, worst_specificity=0.570, images_per_s=160.0),
        "int8": dict(worst_auc=0.899, worst_sensitivity=0.879, worst_specificity=0.560, images_per_s=250.0),
    }
    rows = [{"precision": p, "review_missed": 0, **v, **over.get(p, {})} for p, v in base.items()]
    return pd.DataFrame(rows)


def test_picks_the_fastest_within_tolerance():
    table, chosen = choose_precision(_rows(), tolerance=0.005)
    assert chosen == "int8"
    assert table.precision.tolist() == ["int8", "bf16", "fp32"]  # fastest first
    assert table.set_index("precision").worst_auc_drop["int8"] == pytest.approx(0.004)
    assert table.chosen.sum() == 1 and table[table.chosen].precision.item() == "int8"


def test_one_measure_beyond_tolerance_rules_a_precision_out():
    # int8's specificity falls by 0.006: bf16 (a gain in specificity is not held against it) wins
    table, chosen = choose_precision(_rows(int8={"worst_specificity": 0.556}), tolerance=0.005)
    assert chosen == "bf16"
    row = table.set_index("precision").loc["int8"]
    assert not row.within_tolerance and row.review_ok and not row.eligible
    assert table.set_index("precision").worst_specificity_drop["bf16"] < 0


def test_more_missed_tumours_rule_a_precision_out():
    table, chosen = choose_precision(_rows(int8={"review_missed": 1}), tolerance=0.005)
    assert chosen == "bf16"
    assert not table.set_index("precision").review_ok["int8"]
    # fewer missed than fp32 is fine; a review benchmark not run is not
    assert choose_precision(_rows(fp32={"review_missed": 2}, int8={"review_missed": 1}))[1] == "int8"
    assert choose_precision(_rows(int8={"review_missed": np.nan}, bf16={"review_missed": np.nan}))[1] == "fp32"


def test_fp32_is_kept_when_nothing_else_qualifies_and_is_required():
    worse = {"worst_auc": 0.89}
    assert choose_precision(_rows(bf16=worse, int8=worse))[1] == "fp32"
    with pytest.raises(ValueError, match="fp32"):
        choose_precision(_rows().iloc[1:])


def test_embedding_candidates_carry_features_and_heads():
    heads = OmegaConf.create({"cv_C": {"whiten": 0}, "knn": {"whiten": 0}})
    plain = OmegaConf.create([{"name": "tf_efficientnet_lite2", "out_indices": [2, 3, 4]}])
    assert embedding_candidate("lite2", plain, heads) == (list(plain), {}, ["cv_C", "knn"])
    spec = OmegaConf.create({"backbones": plain, "features": {"precision": "int8"}, "heads": ["cv_C"]})
    blocks, features, names = embedding_candidate("lite2_int8", spec, heads)
    assert features == {"precision": "int8"} and names == ["cv_C"] and len(blocks) == 1
    with pytest.raises(ValueError, match="not in generalization.heads"):
        embedding_candidate("x", OmegaConf.create({"backbones": plain, "heads": ["nope"]}), heads)
    with pytest.raises(ValueError, match="`backbones`"):
        embedding_candidate("x", OmegaConf.create({"features": {"precision": "bf16"}}), heads)


def test_review_missed_reads_the_review_defaults_row(tmp_path):
    review = OmegaConf.create(
        {"strategy": "kcenter", "final_strategy": "safety", "batch_size": 100, "audit_share": 0.1}
        | {"delivery_sensitivity": 0.99}
    )
    row = {"strategy": "kcenter", "final_strategy": "safety", "batch_size": 100, "audit_share": 0.1}
    path = tmp_path / "review.json"
    path.write_text(
        json.dumps(
            {
                "worst_cases": [
                    row | {"delivery_sensitivity": 0.95, "worst_missed": 1},
                    row | {"delivery_sensitivity": 0.99, "worst_missed": 0},
                ]
            }
        )
    )
    assert review_missed(path, review) == 0
    assert np.isnan(review_missed(tmp_path / "absent.json", review))
    assert np.isnan(review_missed(path, OmegaConf.merge(review, {"strategy": "random"})))
