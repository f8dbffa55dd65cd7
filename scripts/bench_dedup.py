"""Near-copy detection on a dataset folder: counts, groups and time per phase.

What it does, and why:
- lists every image under ``--root`` (the brief's layout or any folder of JPEG/PNG files);
- groups files with identical decoded pixels first (the project's pixel hash, as the catalogue):
  exact copies are handled elsewhere, so the finder runs on one representative per pixel hash;
- runs :class:`~brainscan_exp.dedup.NearCopyFinder` on the distinct images (with embeddings when
  ``--embeddings PATH.parquet`` gives columns ``file`` and ``vector``), and times its phases
  (bar: hashing + candidates + confirmation <= 120 s on 2 cores for the brief's 1,506 images);
- reports near groups among distinct images, and the groups / files once exact copies are folded
  back in (a file is in a group if it has an exact or a near copy);
- writes ``scripts/results/dedup_<dataset>.json`` and ``dedup_<dataset>_uncertain.png``, the
  confirmed pairs with the lowest score, to be looked at; ``--save-pairs`` also writes every
  candidate pair with its signals (CSV) for threshold work.

Usage::

    python scripts/bench_dedup.py                      # the brief's data, next to the project
    python scripts/bench_dedup.py --root DIR --embeddings vectors.parquet --save-pairs
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PROJECT_ROOT, RESULTS_DIR, write_json

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--root", type=Path, default=PROJECT_ROOT.parent / "shared" / "data" / "mri_dataset_brain_cancer_oc")
    p.add_argument("--embeddings", type=Path, default=None, help="parquet with columns file, vector")
    p.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    p.add_argument("--n-jobs", type=int, default=2, help="confirmation threads")
    p.add_argument("--mosaic", type=int, default=12, help="pairs in the uncertain-pairs mosaic")
    p.add_argument("--limit", type=int, default=None, help="only the first N files (smoke test)")
    p.add_argument("--save-pairs", action="store_true", help="also write every candidate pair (CSV)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PARAM=VALUE",
        help="override a NearCopyFinder hyperparameter, e.g. --set max_hamming=24 (repeatable)",
    )
    return p.parse_args(argv)


def list_images(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def load_embeddings(path: Path, root: Path, files: list[str]):
    """Rows of the parquet matched to ``files`` by relative name, absolute path or basename."""
    import numpy as np
    import pandas as pd

    table = pd.read_parquet(path)
    vectors = {}
    for f, v in zip(table["file"].astype(str), table["vector"]):
        for key in {f, str(Path(f).resolve()) if Path(f).is_absolute() else str((root / f).resolve()), Path(f).name}:
            vectors.setdefault(key, v)
    rows, missing = [], 0
    for f in files:
        v = vectors.get(f, vectors.get(str((root / f).resolve()), vectors.get(Path(f).name)))
        if v is None:
            missing += 1
        rows.append(v)
    if missing:
        raise SystemExit(f"{path}: no vector for {missing} of {len(files)} images")
    return np.stack([np.asarray(v, dtype=np.float32) for v in rows])


def parse_overrides(items: list[str]) -> dict:
    import ast

    out = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key.strip()] = value
    return out


def main(argv=None) -> dict:
    args = parse_args(argv)
    import cv2
    import imagehash
    import numpy as np
    import pandas as pd

    from brainscan_exp.data.images import load_image, pixel_hash
    from brainscan_exp.dedup import NO_GROUP, NearCopyFinder, duplicates_table, plot_uncertain_pairs

    root = args.root.resolve()
    dataset = root.name
    files = list_images(root)[: args.limit]
    print(f"{len(files)} images under {root}")

    t0 = time.perf_counter()
    digests = [pixel_hash(load_image(root / f)) for f in files]
    exact_seconds = time.perf_counter() - t0
    frame = pd.DataFrame({"file": files, "pixel_hash": digests})
    reps = frame.drop_duplicates("pixel_hash").reset_index(drop=True)  # first file (sorted) per pixel hash
    exact_sizes = frame.pixel_hash.value_counts()
    n_exact_groups = int((exact_sizes > 1).sum())
    n_exact_files = int(exact_sizes[exact_sizes > 1].sum())
    print(
        f"{len(reps)} distinct images; {n_exact_groups} exact-copy groups holding {n_exact_files} files "
        f"({exact_seconds:.1f} s)"
    )

    embeddings = load_embeddings(args.embeddings, root, reps.file.tolist()) if args.embeddings else None
    finder = NearCopyFinder(n_jobs=args.n_jobs, verbose=True).set_params(**parse_overrides(args.set))
    finder.fit([str(root / f) for f in reps.file], embeddings)

    # fold exact copies back in: every file takes its representative's near group
    reps["near_group"] = finder.groups_
    frame = frame.merge(reps[["pixel_hash", "near_group"]], on="pixel_hash", how="left")
    in_near = frame.near_group != NO_GROUP
    exact_dup = frame.pixel_hash.map(exact_sizes) > 1
    n_exact_only_groups = int(frame.loc[exact_dup & ~in_near, "pixel_hash"].nunique())
    pairs = finder.pairs_
    near_table = duplicates_table(reps.file.tolist(), finder)
    mosaic = plot_uncertain_pairs(
        [str(root / f) for f in reps.file], pairs, args.out_dir / f"dedup_{dataset}_uncertain.png", n=args.mosaic
    )
    reasons = pairs.reason.value_counts().to_dict()
    timings = finder.timings_
    result = {
        "dataset": dataset,
        "root": str(root),
        "embeddings": str(args.embeddings) if args.embeddings else None,
        "n_files": len(files),
        "n_distinct_images": len(reps),
        "exact": {"groups": n_exact_groups, "files": n_exact_files, "seconds": exact_seconds},
        "candidate_pairs": len(pairs),
        "candidate_sources": pairs.source.value_counts().to_dict(),
        "confirmed_pairs": int(pairs.confirmed.sum()),
        "rejection_reasons": {k: v for k, v in reasons.items() if k != "ok"},
        "near": {
            "groups": finder.n_groups_,
            "distinct_images_in_groups": int((finder.groups_ != NO_GROUP).sum()),
            "files_in_groups": int(in_near.sum()),
            "group_sizes_distinct": {
                int(k): int(v)
                for k, v in pd.Series(finder.groups_[finder.groups_ != NO_GROUP])
                .value_counts()
                .value_counts()
                .sort_index()
                .items()
            },
            "lowest_file_scores": near_table.score.nsmallest(5).round(3).tolist(),
        },
        "total": {
            "groups": finder.n_groups_ + n_exact_only_groups,
            "files_in_groups": int((in_near | exact_dup).sum()),
        },
        "seconds": {**{k: round(v, 2) for k, v in timings.items()}, "finder_total": round(timings["total"], 2)},
        "bar_seconds": 120.0,
        "within_bar": timings["total"] <= 120.0,
        "params": finder.get_params(),
        "mosaic": str(mosaic),
        "env": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "opencv": cv2.__version__,
            "imagehash": imagehash.__version__,
            "cpu_count": os.cpu_count(),
            "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        },
    }
    out = write_json(result, args.out_dir / f"dedup_{dataset}.json")
    if args.save_pairs:
        named = pairs.assign(file_i=reps.file.to_numpy()[pairs.i], file_j=reps.file.to_numpy()[pairs.j])
        named.to_csv(args.out_dir / f"dedup_{dataset}_pairs.csv", index=False)
    print(
        f"near: {result['near']['groups']} groups, {result['near']['distinct_images_in_groups']} distinct images, "
        f"{result['near']['files_in_groups']} files; with exact copies: {result['total']['groups']} groups, "
        f"{result['total']['files_in_groups']} files"
    )
    print(f"seconds: {result['seconds']}")
    print(f"wrote {out} and {mosaic}")
    return result


if __name__ == "__main__":
    main()
