"""Linear-probe check of the preprocessing: how well do frozen backbone embeddings separate the classes?

On a real dataset folder (brief layout), the distinct labelled images (catalogue: one row per pixel
hash) are embedded with the package's features stage (``FeatureExtractor``, cached under
``cache/features``), then a standardised logistic regression
(``make_pipeline(StandardScaler(), LogisticRegression(C, max_iter=5000))``) is scored by 5x5 repeated
stratified cross-validation (``RepeatedStratifiedKFold``, seed 0) with ROC-AUC (cancer = positive).

Why: if the decode / greyscale / resize / normalisation chain were wrong (channels, mean-std,
interpolation, crops), ImageNet features would lose most of their signal and this AUC would drop
towards 0.5; comparing ``--preprocess default`` and ``--preprocess mri`` (head crop, percentile
intensity, CLAHE) shows what the MRI steps change. It is a sanity check of the pipeline, not a model
selection: C is FIXED a priori (``--C``, default 0.1, a moderate L2 penalty for ~100 samples of
~1280 standardised features) and must not be tuned on these CV results.

Caveat: the dataset has near-duplicates (flips, crops, re-contrasted copies) that pixel hashes do
not catch, and classes that partly come from different sources, so the CV AUC is optimistic as an
estimate of tumour detection; it is meant to compare preprocessing variants on equal terms.

Reported: mean and std of the 25 fold AUCs, a 95 % interval of the mean by the corrected resampled
t-test (Nadeau & Bengio 2003: variance (1/(k r) + n_test/n_train) s^2, t with k r - 1 df; folds of
repeated CV overlap, so the naive s/sqrt(25) is too narrow), the 2.5-97.5 % percentiles of the fold
AUCs, and the pooled out-of-fold AUC of each repeat.

Usage::

    python scripts/probe_cv_auc.py                                  # brief dataset, default preprocessing
    python scripts/probe_cv_auc.py --preprocess default mri         # compare both
    python scripts/probe_cv_auc.py --limit 40                       # quick smoke test (20 per class)
    python scripts/probe_cv_auc.py --out-indices head 2 3 4         # which stage gives the embedding

Results go to ``scripts/results/probe_cv_auc_<dataset>.json`` (``..._limit<N>.json`` with --limit),
one entry per (backbone, preprocess), merged with the entries already in the file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PROJECT_ROOT, RESULTS_DIR, env_info, write_json

DEFAULT_ROOT = PROJECT_ROOT.parent / "shared" / "data" / "mri_dataset_brain_cancer_oc"
DEFAULT_C = 0.1  # fixed before looking at any result; do not tune it on the CV AUC
N_SPLITS, N_REPEATS, SEED = 5, 5, 0


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--root", default=str(DEFAULT_ROOT), help="dataset folder (avec_labels/{cancer,normal}, sans_label)")
    p.add_argument("--backbone", default="tf_efficientnet_lite0")
    p.add_argument("--weights", default="imagenet")
    p.add_argument(
        "--out-indices",
        nargs="+",
        default=["3"],
        help="timm feature levels pooled into the embedding (the package default: 3); 'head' = the final pooled features. "
        "Several values are probed one after the other, e.g. --out-indices head 2 3 4",
    )
    p.add_argument(
        "--preprocess",
        nargs="+",
        choices=["default", "mri"],
        default=["default"],
        help="MRI preprocessing variants to probe (default: identity; mri: head crop + percentile + CLAHE)",
    )
    p.add_argument("--C", type=float, default=DEFAULT_C, help="inverse L2 strength, fixed a priori (default 0.1)")
    p.add_argument(
        "--limit", type=int, default=None, help="use only the first LIMIT/2 images of each class (smoke test)"
    )
    p.add_argument("--cache-dir", default=str(PROJECT_ROOT / "cache"), help="catalogue hash index and features/ store")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument(
        "--runtime", default="auto", help="features runtime: auto | torch | onnxruntime | openvino (default: auto)"
    )
    p.add_argument("--out", default=None, help="JSON path (default: scripts/results/probe_cv_auc_<dataset>.json)")
    return p.parse_args(argv)


def make_mri(name: str):
    from brainscan_exp.preprocessing import MRIPreprocess

    return (
        MRIPreprocess()
        if name == "default"
        else MRIPreprocess(head_crop=True, intensity="percentile", equalize="clahe")
    )


def labelled_subset(labelled, limit: int | None):
    """All distinct labelled images, or the first limit/2 of each class (by file name) for a smoke test."""
    if not limit:
        return labelled.reset_index(drop=True)
    per_class = max(N_SPLITS, limit // 2)
    return labelled.sort_values("file").groupby("label", group_keys=False).head(per_class).reset_index(drop=True)


def cv_auc(X, y, C: float) -> dict:
    import numpy as np
    from scipy import stats
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import RepeatedStratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cv = RepeatedStratifiedKFold(n_splits=N_SPLITS, n_repeats=N_REPEATS, random_state=SEED)
    fold_aucs, oof = [], np.full((N_REPEATS, len(y)), np.nan)
    for i, (train, test) in enumerate(cv.split(X, y)):
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000))
        clf.fit(X[train], y[train])
        score = clf.predict_proba(X[test])[:, 1]
        fold_aucs.append(roc_auc_score(y[test], score))
        oof[i // N_SPLITS, test] = score
    aucs = np.asarray(fold_aucs)
    k = len(aucs)
    mean, sd = float(aucs.mean()), float(aucs.std(ddof=1))
    n_test = len(y) / N_SPLITS
    corrected_se = float(np.sqrt((1 / k + n_test / (len(y) - n_test)) * sd**2))
    half = float(stats.t.ppf(0.975, k - 1)) * corrected_se
    return {
        "auc_mean": mean,
        "auc_std": sd,
        "auc_ci95": [max(0.0, mean - half), min(1.0, mean + half)],
        "auc_ci95_method": "corrected resampled t (Nadeau-Bengio): se = sqrt((1/25 + n_test/n_train) * s^2), t(24)",
        "fold_auc_p2_5_p97_5": [float(np.percentile(aucs, 2.5)), float(np.percentile(aucs, 97.5))],
        "fold_auc_min_max": [float(aucs.min()), float(aucs.max())],
        "pooled_oof_auc_per_repeat": [float(roc_auc_score(y, oof[r])) for r in range(N_REPEATS)],
        "fold_aucs": aucs.tolist(),
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    import numpy as np

    from brainscan_exp.data import build_catalogue
    from brainscan_exp.features.extract import FeatureExtractor
    from brainscan_exp.models.backbones import Backbone

    root = Path(args.root).expanduser().resolve()
    dataset = root.name
    out = (
        Path(args.out)
        if args.out
        else RESULTS_DIR / f"probe_cv_auc_{dataset}{f'_limit{args.limit}' if args.limit else ''}.json"
    )
    start = time.perf_counter()
    catalogue = build_catalogue(root, cache_dir=args.cache_dir)
    catalogue_seconds = time.perf_counter() - start
    frame = labelled_subset(catalogue.labelled, args.limit)
    y = frame.label.to_numpy().astype(int)
    print(
        f"{dataset}: {len(frame)} distinct labelled images ({int(y.sum())} cancer, {int((y == 0).sum())} normal); "
        f"catalogue in {catalogue_seconds:.1f} s",
        flush=True,
    )

    extractor = FeatureExtractor(
        str(Path(args.cache_dir) / "features"), batch_size=args.batch_size, runtime=args.runtime, progress=False
    )
    paths_by_hash = dict(zip(frame.pixel_hash, frame.path))
    results = {}
    for stage, variant in [(s, v) for s in args.out_indices for v in args.preprocess]:
        backbone = Backbone(args.backbone, args.weights, out_indices=None if stage == "head" else [int(stage)])
        model = backbone.build()
        mri = make_mri(variant)
        store, stats = extractor.run(paths_by_hash, backbone, mri, model)
        vectors = store.load(list(paths_by_hash))
        X = np.stack([vectors[h] for h in frame.pixel_hash]).astype(np.float64)
        start = time.perf_counter()
        res = cv_auc(X, y, args.C)
        res.update(
            backbone=args.backbone,
            weights=args.weights,
            out_indices=backbone.out_indices,
            preprocess=variant,
            mri=mri.as_dict(),
            C=args.C,
            cv=f"RepeatedStratifiedKFold(n_splits={N_SPLITS}, n_repeats={N_REPEATS}, random_state={SEED})",
            classifier=f"make_pipeline(StandardScaler(), LogisticRegression(C={args.C}, max_iter=5000))",
            n_images=len(y),
            n_cancer=int(y.sum()),
            n_normal=int((y == 0).sum()),
            embedding_dim=int(X.shape[1]),
            feature_key=store.key,
            feature_stats=stats,
            cv_seconds=time.perf_counter() - start,
        )
        results[f"{args.backbone}/{variant}/{'head' if stage == 'head' else f'stage{stage}'}"] = res
        computed = (
            f"{stats['n_computed']}/{stats['n_images']} computed ({stats['images_per_s']:.1f} img/s)"
            if stats["n_computed"]
            else "all from the cache"
        )
        print(
            f"[{args.backbone} / {variant} / out_indices={backbone.out_indices}] ROC-AUC {res['auc_mean']:.3f} +- {res['auc_std']:.3f} (fold std), "
            f"95% CI of the mean [{res['auc_ci95'][0]:.3f}, {res['auc_ci95'][1]:.3f}]; features: {computed}",
            flush=True,
        )

    previous = {}
    if out.exists():
        try:
            previous = json.loads(out.read_text()).get("results", {})
        except (json.JSONDecodeError, AttributeError):
            previous = {}
    payload = {
        "script": "scripts/probe_cv_auc.py",
        "dataset": dataset,
        "root": str(root),
        "dataset_fingerprint": catalogue.fingerprint,
        "dataset_summary": catalogue.summary(),
        "limit": args.limit,
        "note": "C fixed a priori (not tuned on CV). Pixel-hash dedup only: near-duplicates across folds "
        "make the AUC optimistic; use it to compare preprocessing variants.",
        "env": env_info(),
        "results": {**previous, **results},
    }
    write_json(payload, out)
    print(f"written {out}")
    return payload


if __name__ == "__main__":
    main()
