"""Which ``features.precision`` to run: chosen by the task metric, not by the distance between vectors.

Why not the vectors: bf16 moves Lite0's vectors by ~7 % and INT8 by more, yet what the client buys
is the tumour calls. A lower precision is kept when the generalization benchmark's worst cases
(ROC-AUC, sensitivity, specificity, each the minimum over every scenario) lose at most
``tolerance`` against fp32 of the same embedding, and the review benchmark misses no more tumours;
among those, the fastest end to end wins. fp32 is the reference and always eligible.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MEASURES = ("worst_auc", "worst_sensitivity", "worst_specificity")
REFERENCE = "fp32"


def choose_precision(
    rows: pd.DataFrame, tolerance: float = 0.005, reference: str = REFERENCE
) -> tuple[pd.DataFrame, str]:
    """``rows``: one per precision with ``precision``, the ``MEASURES``, ``images_per_s`` (end to
    end) and ``review_missed`` (the review benchmark's worst-case missed tumours; NaN: not run).

    Returns the table with, per measure, the drop against the reference (positive: worse),
    ``within_tolerance`` (every drop <= ``tolerance``; a gain is never held against a candidate),
    ``review_ok`` (missed <= the reference's; not run: False), ``eligible``, ``chosen``, sorted
    fastest first; and the chosen precision (the fastest eligible one)."""
    table = rows.copy().reset_index(drop=True)
    if (table.precision == reference).sum() != 1:
        raise ValueError(f"the precision table needs exactly one {reference!r} row, got {table.precision.tolist()}")
    ref = table[table.precision == reference].iloc[0]
    for m in MEASURES:
        table[f"{m}_drop"] = ref[m] - table[m]
    table["within_tolerance"] = np.logical_and.reduce([table[f"{m}_drop"] <= tolerance + 1e-12 for m in MEASURES])
    missed = pd.to_numeric(table.review_missed, errors="coerce")
    ref_missed = pd.to_numeric(pd.Series([ref.review_missed]), errors="coerce").iloc[0]
    table["review_ok"] = missed.notna() & (missed <= ref_missed if pd.notna(ref_missed) else False)
    is_ref = table.precision == reference
    table.loc[is_ref, ["within_tolerance", "review_ok"]] = True
    table["eligible"] = table.within_tolerance & table.review_ok
    speed = pd.to_numeric(table.images_per_s, errors="coerce").fillna(-np.inf)
    table = table.assign(_speed=speed).sort_values("_speed", ascending=False, kind="stable").drop(columns="_speed")
    chosen = str(table[table.eligible].iloc[0].precision)
    table["chosen"] = table.precision == chosen
    return table.reset_index(drop=True), chosen
