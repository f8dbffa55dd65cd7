"""The train task's pool table: review flags and truth scoring, on small arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainscan_exp.core.review import ood_score, review_table, score_at_threshold


def test_a_far_image_scores_above_one_and_a_training_like_one_below():
    rng = np.random.default_rng(0)
    X_train = rng.normal(size=(50, 8)) + 5.0
    near, far = X_train[:1] + 0.01, -X_train[:1]
    scores = ood_score(X_train, np.vstack([near, far]))
    assert scores[0] < 1.0 < scores[1]


def test_review_flags_images_near_the_threshold_or_far_from_the_labels():
    rng = np.random.default_rng(1)
    X_train = rng.normal(size=(40, 4)) + 3.0
    X_pool = np.vstack([X_train[:3] + 0.01, -X_train[:1]])
    table = review_table(
        np.array(["a", "b", "c", "d"]), np.array([0.5, 0.99, 0.01, 0.99]), 0.5, X_train, X_pool, np.array([""] * 4)
    )
    assert table.review.tolist() == [True, False, False, True]
    assert table.review_reason.tolist() == ["uncertain", "", "", "far from labelled data"]
    assert table.label_pred.tolist() == ["cancer", "cancer", "normal", "cancer"]
    assert table.uncertainty[0] == pytest.approx(1.0)


def test_truth_scoring_leaves_out_copies_of_labelled_images():
    predictions = pd.DataFrame(
        {"file": ["a", "b", "c"], "p_cancer": [0.9, 0.1, 0.2], "copy_of_labelled": ["", "", "x.jpg"]}
    )
    truth = pd.DataFrame({"file": ["a", "b", "c"], "label": ["cancer", "normal", "cancer"]})
    scored = score_at_threshold(predictions, truth, 0.5)
    assert scored["n_scored"] == 2 and scored["sensitivity"] == 1.0 and scored["specificity"] == 1.0
    with pytest.raises(ValueError, match="relative"):
        score_at_threshold(predictions, truth.assign(file=["/abs/a", "/abs/b", "/abs/c"]), 0.5)
