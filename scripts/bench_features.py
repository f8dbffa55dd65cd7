"""Benchmark of the features stage per inference runtime (torch, ONNX Runtime, OpenVINO).

What it measures, and why:
- ``model_only_images_per_s``: the runtime alone on pre-decoded batches of 32 real images, fed as
  the stage feeds it (its fixed compute-batch shapes), after warm-up: the best this machine can do;
- ``stage_images_per_s``: ``FeatureExtractor.run`` end to end (JPEG files -> threaded decoding ->
  runtime -> committed shards) on generated 512x512 slices, fresh store, export already cached;
  ``ratio`` = stage / model-only says what the input pipeline costs (bar >= 0.85);
- ``real_images``: the same on the real collections (the brief's 1,410 distinct images and
  ``brain_mri_oc``'s 1,506) with the default runtime, each repeat paired with a model-only run, as
  this shared machine's speed drifts by +-10 % within minutes. Generated slices are noisier than
  real ones (about 114 KB per JPEG against 24 and 46 KB), so they cost more to decode;
- ``compute_batch`` and ``stem_fold``: the default runtime at 2, 4 and 8 images per forward, and
  with the greyscale stem folded or not (model-only, the brief's images end to end, and how far the
  folded embeddings move);
- ``resize``: the MRI steps' downscaling (``preprocessing.downscale``) against PIL's antialiased
  bicubic on the real head crops: time per image and mean |difference| in grey levels;
- ``agreement``: embeddings of the real images (labelled + some unlabelled) against torch fp32:
  max over images of ||a - b|| / ||b|| (bar 1e-4), and the labelled set's 5x5 repeated stratified
  CV ROC-AUC (``probe_cv_auc.cv_auc``: same folds for every runtime);
- ``draft_decode``: JPEG draft mode (DCT-domain downscaling) against full decoding: embedding
  difference, CV AUC, and the decoding cost per image;
- ``peak_rss_mb`` at each size, each in a fresh subprocess (this script with ``--child``): the
  stage streams shards, so memory must not grow with the dataset (bar < 10 %);
- ``kill_test``: SIGKILL a child at ~50 % of the images, rerun, count recomputed vs missing, and
  compare bytes with an uninterrupted run (all three runs in children with the same threads);
- ``precision``: ``features.precision`` fp32, bf16 and int8 (NNCF, calibrated on a seeded sample of
  the brief's images) on OpenVINO, for the features stage's backbone and the predict pipeline's
  embedding (Lite2 levels 2-4): model-only and end to end on the brief's images, paired and
  interleaved in one run (bar for a lower precision to become the default: >= 400 img/s end to
  end); which precision is the default is chosen by the task metric (experiment=generalization).

Generated images are cached by index (image i depends only on (seed, i)) in a temp folder.

Usage::

    python scripts/bench_features.py                 # everything (~15 min on 2 cores)
    python scripts/bench_features.py --quick         # smaller sizes, no RSS / kill test
    python scripts/bench_features.py --precision-only  # the precision table alone (~6 min):
                                                     # scripts/results/bench_features_precision.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PROJECT_ROOT, RESULTS_DIR, ensure_bench_images, env_info, peak_rss_mb, write_json

CHILD_MARKER = "@@BENCH_CHILD_RESULT@@ "
BARS = {
    "stage_images_per_s_min": 250,
    "ratio_min": 0.85,
    "rss_growth_max": 0.10,
    "agreement_max_rel": 1e-4,
    "lower_precision_stage_images_per_s_min": 400,  # issue 21: bf16/int8 as the default only at >= 400 img/s
}
# ../shared next to the checkout (a git worktree under wt/ has it one level further up)
REAL_DATA = next(
    (d for d in (p / "shared" / "data" / "mri_dataset_brain_cancer_oc" for p in PROJECT_ROOT.parents) if d.is_dir()),
    PROJECT_ROOT.parent / "shared" / "data" / "mri_dataset_brain_cancer_oc",
)
RUNTIMES = ["torch", "onnxruntime", "openvino"]
PRECISIONS = ["fp32", "bf16", "int8"]
# backbone:feature levels of the precision table: the features stage's default (conf/backbone) and
# the predict pipeline's embedding (conf/experiment/predict.yaml, the generalization benchmark's choice)
PRECISION_BACKBONES = ["tf_efficientnet_lite0:3", "tf_efficientnet_lite2:2,3,4"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--backbone", default="tf_efficientnet_lite0")
    p.add_argument("--weights", default="imagenet")
    p.add_argument("--preprocess", default="mri", help="conf/preprocess option (the package default: mri)")
    p.add_argument("--out-indices", type=int, nargs="+", default=[3], help="feature levels (conf/backbone: [3])")
    p.add_argument("--runtimes", nargs="+", default=RUNTIMES)
    p.add_argument("--stage-images", type=int, default=2000, help="images per end-to-end run (torch: a quarter)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000], help="dataset sizes of the RSS runs")
    p.add_argument("--kill-images", type=int, default=2000)
    p.add_argument("--unlabelled", type=int, default=400, help="unlabelled real images added to the agreement set")
    p.add_argument("--decode-threads", type=int, nargs="+", default=[1, 2], help="swept on the default runtime")
    p.add_argument("--quick", action="store_true", help="small sizes, one repeat, no RSS and kill test")
    p.add_argument("--data", default=str(REAL_DATA), help="real images: avec_labels/{cancer,normal}, sans_label")
    p.add_argument("--data-second", default=str(REAL_DATA.parent / "brain_mri_oc"), help="a second real collection")
    p.add_argument("--compute-batches", type=int, nargs="+", default=[2, 4, 8], help="swept on the default runtime")
    p.add_argument("--precisions", nargs="+", default=PRECISIONS, help="features.precision values compared")
    p.add_argument(
        "--precision-backbones", nargs="+", default=PRECISION_BACKBONES, help="name:levels (comma-separated)"
    )
    p.add_argument("--precision-only", action="store_true", help="only the precision table (its own JSON)")
    p.add_argument("--work-dir", default=None, help="stores and exports (default: a temp folder, removed)")
    p.add_argument("--out", default=None, help="default: scripts/results/bench_features[_precision].json")
    p.add_argument("--child", choices=["rss", "run"], default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-cache", default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-n", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.out is None:
        args.out = str(
            RESULTS_DIR / ("bench_features_precision.json" if args.precision_only else "bench_features.json")
        )
    if args.quick:
        args.stage_images, args.repeats, args.unlabelled = 256, 1, 50
        args.sizes, args.kill_images, args.decode_threads, args.compute_batches = [], 0, [], []
    return args


def _backbone(args):
    from brainscan_exp.models.backbones import Backbone

    return Backbone(args.backbone, args.weights, out_indices=args.out_indices)


def _mri(args):
    """The stage's MRI steps: the package default (``preprocess=mri``: head crop, percentile
    intensity, CLAHE) unless ``--preprocess default`` (none)."""
    from hydra.utils import instantiate

    from brainscan_exp.notebook import compose_config

    return instantiate(compose_config([f"preprocess={args.preprocess}"]).preprocess)


def _median(values):
    return statistics.median(values) if values else float("nan")


def real_images(root: Path, n_unlabelled: int) -> tuple[list[str], list[int], list[str]]:
    """Labelled paths, their labels (cancer = 1), and the first ``n_unlabelled`` unlabelled paths."""
    labelled = sorted((root / "avec_labels").glob("*/*.jpg"))
    if not labelled:
        raise SystemExit(f"no labelled images under {root}/avec_labels: pass --data")
    labels = [int(p.parent.name == "cancer") for p in labelled]
    unlabelled = sorted((root / "sans_label").glob("*.jpg"))[:n_unlabelled]
    return [str(p) for p in labelled], labels, [str(p) for p in unlabelled]


def model_only(embedder, batch, repeats: int, rounds: int = 6) -> float:
    """Images/s of the runtime alone on a pre-decoded batch, cut as the stage cuts it."""
    size = embedder.batch
    chunks = [batch[i : i + size] for i in range(0, len(batch), size)]
    for _ in embedder.runtime.infer(chunks):  # warm-up
        pass
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(rounds):
            for _ in embedder.runtime.infer(chunks):
                pass
        rates.append(rounds * len(batch) / (time.perf_counter() - start))
    return _median(rates)


def stage_rate(extractor, paths, backbone, mri, model, repeats: int) -> dict:
    """``FeatureExtractor.run`` on a fresh store each repeat (the export, and an int8 model
    calibrated on ``paths``, stay cached)."""
    rates = []
    for _ in range(repeats):
        store = extractor.store_for(backbone, mri, model, paths_by_hash=paths)
        shutil.rmtree(store.dir)
        _, stats = extractor.run(paths, backbone, mri, model)
        rates.append(stats["images_per_s"])
    return {"images_per_s": _median(rates), "all": rates, "n_images": len(paths)}


def rel_diff(a, b):
    """Per image ||a - b|| / ||b||: how far embeddings ``a`` sit from the reference ``b``."""
    import numpy as np

    return np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)


def agreement(embeddings: dict, labels) -> dict:
    import numpy as np
    from probe_cv_auc import DEFAULT_C, cv_auc

    ref = embeddings["torch/fp32"]
    y = np.asarray(labels)
    out = {}
    for name, X in embeddings.items():
        rel = rel_diff(X, ref)
        auc = cv_auc(X[: len(y)].astype(np.float64), y, DEFAULT_C)
        out[name] = {
            "max_rel_diff": float(rel.max()),
            "median_rel_diff": float(np.median(rel)),
            "cv_auc": auc["auc_mean"],
        }
        out[name]["cv_auc_3dp"] = round(auc["auc_mean"], 3)
    return out


def real_collections(brief: Path, second: Path) -> dict[str, dict[str, str]]:
    """``{name: {key: path}}`` of the real collections: the brief's distinct files (byte-identical
    copies once) and the second collection's files, labelled and unlabelled."""
    from brainscan_exp.data.images import file_hash

    out = {}
    for name, root in (("brief", brief), ("brain_mri_oc", second)):
        files = sorted(root.glob("*/*.jpg")) + sorted(root.glob("*/*/*.jpg"))
        if files:
            out[name] = {}
            for path in files:
                out[name].setdefault(file_hash(path), str(path))
    return out


def paired_rates(work: Path, backbone, mri, model, collections: dict, variants: dict, repeats: int) -> dict:
    """For each variant (``FeatureExtractor`` overrides), per repeat: the model alone, then the
    stage on each collection. Variants and repeats interleave, so a drift of the machine's speed
    hits them alike; the ratio is the median stage rate over the median model-only rate."""
    from brainscan_exp.features import FeatureExtractor

    extractors = {v: FeatureExtractor(str(work / "stage"), progress=False, **kw) for v, kw in variants.items()}
    first = next(iter(collections.values()))
    samples: dict = {v: {"model": [], **{c: [] for c in collections}} for v in variants}
    for _ in range(repeats):
        for v, extractor in extractors.items():
            # int8: quantised on a sample of the first collection (the brief's), as its stage run is
            embedder = extractor.embedder(backbone, mri, model, extractor.calibration_for(first))
            batch = embedder.decoder.decode(list(first.values())[:32])
            samples[v]["model"].append(model_only(embedder, batch, 1))
            embedder.close()
            for c, paths in collections.items():
                samples[v][c].append(stage_rate(extractor, paths, backbone, mri, model, 1)["images_per_s"])
    out = {}
    for v, rows in samples.items():
        model_rate = _median(rows["model"])
        out[v] = {"model_only_images_per_s": model_rate, "model_only_all": rows["model"]}
        for c in collections:
            out[v][c] = {
                "n_images": len(collections[c]),
                "stage_images_per_s": _median(rows[c]),
                "stage_all": rows[c],
                "ratio": _median(rows[c]) / model_rate,
            }
    return out


def precision_table(args, work: Path, mri, collections: dict) -> dict:
    """fp32 / bf16 / int8 on OpenVINO per backbone: model-only and end to end on the brief's
    images, paired and interleaved (``paired_rates``) so that drift hits every precision alike.
    The int8 model is quantised before timing (on a seeded sample of the brief's images, cached)."""
    from brainscan_exp.features import FeatureExtractor
    from brainscan_exp.models.backbones import Backbone

    brief = {"brief": collections["brief"]}
    out = {}
    for spec in args.precision_backbones:
        name, levels = spec.split(":")
        backbone = Backbone(name, args.weights, out_indices=[int(i) for i in levels.split(",")])
        model = backbone.build()
        variants = {p: {"runtime": "openvino", "precision": p} for p in args.precisions}
        for p, kw in variants.items():  # exports and quantisation outside the timed runs
            start = time.perf_counter()
            extractor = FeatureExtractor(str(work / "stage"), progress=False, **kw)
            extractor.model_file(backbone, mri, model, extractor.calibration_for(brief["brief"]))
            print(f"  {spec} {p}: model ready in {time.perf_counter() - start:.1f} s", flush=True)
        rates = paired_rates(work, backbone, mri, model, brief, variants, repeats=args.repeats)
        for p, row in rates.items():
            row["stage_bar_met"] = row["brief"]["stage_images_per_s"] >= BARS["lower_precision_stage_images_per_s_min"]
            row["speedup_vs_fp32"] = row["brief"]["stage_images_per_s"] / rates["fp32"]["brief"]["stage_images_per_s"]
            print(
                f"  {spec} {p}: model-only {row['model_only_images_per_s']:.1f} img/s, end to end on the brief's "
                f"images {row['brief']['stage_images_per_s']:.1f} img/s (x{row['speedup_vs_fp32']:.2f} fp32)",
                flush=True,
            )
        out[spec] = rates
    return out


def resize_table(paths: list[str], mri) -> dict:
    """``preprocessing.downscale`` against PIL's antialiased bicubic on the real head crops."""
    import numpy as np
    from PIL import Image

    from brainscan_exp.preprocessing import crop_padded, downscale

    crops = []
    for path in paths[:300]:
        with Image.open(path) as img:
            grey = np.asarray(img.convert("L"))
        crops.append(crop_padded(grey, mri.head_box(grey)))
    sizes = [(round(c.shape[1] * 256 / min(c.shape)), round(c.shape[0] * 256 / min(c.shape))) for c in crops]
    start = time.perf_counter()
    ref = [np.asarray(Image.fromarray(c).resize(s, Image.Resampling.BICUBIC)) for c, s in zip(crops, sizes)]
    pil_ms = 1000 * (time.perf_counter() - start) / len(crops)
    start = time.perf_counter()
    ours = [downscale(c, s) for c, s in zip(crops, sizes)]
    ours_ms = 1000 * (time.perf_counter() - start) / len(crops)
    diff = [np.abs(a.astype(np.int16) - b) for a, b in zip(ref, ours)]
    return {
        "n_crops": len(crops),
        "pil_bicubic_ms": pil_ms,
        "downscale_ms": ours_ms,
        "mean_abs_diff_grey_levels": float(np.mean([d.mean() for d in diff])),
        "p99_abs_diff_grey_levels": float(np.mean([np.percentile(d, 99) for d in diff])),
    }


def child(args) -> None:
    """One stage run in a fresh process (RSS, kill test); prints its stats after the marker."""
    from brainscan_exp.features import FeatureExtractor

    paths = ensure_bench_images(args.child_n, log=lambda *_: None)
    backbone = _backbone(args)
    model = backbone.build()
    extractor = FeatureExtractor(args.child_cache, progress=False)
    store, stats = extractor.run(paths, backbone, _mri(args), model)
    stats["peak_rss_mb"] = peak_rss_mb()
    stats["store_key"] = store.key
    print(CHILD_MARKER + json.dumps(stats), flush=True)


def _child_cmd(args, kind: str, cache: Path, n: int) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--child-cache", str(cache)]
    cmd += [
        "--child-n",
        str(n),
        "--backbone",
        args.backbone,
        "--weights",
        args.weights,
        "--preprocess",
        args.preprocess,
    ]
    cmd += ["--out-indices"]
    return cmd + [str(i) for i in args.out_indices]


def _child_result(stdout: str) -> dict:
    return json.loads(next(line for line in stdout.splitlines() if line.startswith(CHILD_MARKER))[len(CHILD_MARKER) :])


def _with_exports(work: Path, cache: Path) -> Path:
    """A fresh cache holding the exports made earlier: children measure the stage, not the export."""
    if (work / "stage" / "models").exists() and not (cache / "models").exists():
        shutil.copytree(work / "stage" / "models", cache / "models")
    return cache


def rss(args, work: Path) -> dict:
    out = {}
    for n in args.sizes:
        cache = _with_exports(work, work / f"rss_{n}")
        proc = subprocess.run(_child_cmd(args, "rss", cache, n), stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT)
        result = _child_result(proc.stdout)
        out[str(n)] = {"peak_rss_mb": result["peak_rss_mb"]["main"], "images_per_s": result["images_per_s"]}
        print(f"  RSS at {n} images: {out[str(n)]['peak_rss_mb']:.0f} MiB", flush=True)
    if len(args.sizes) >= 2:
        first, last = out[str(args.sizes[0])]["peak_rss_mb"], out[str(args.sizes[-1])]["peak_rss_mb"]
        out["rss_growth"] = (last - first) / first
    return out


def kill_test(args, work: Path) -> dict:
    """SIGKILL at ~50 %, rerun, compare with an uninterrupted run."""
    import numpy as np

    from brainscan_exp.features import FeatureExtractor

    n = args.kill_images
    killed, clean = _with_exports(work, work / "kill_killed"), _with_exports(work, work / "kill_clean")
    ensure_bench_images(n)
    shard_size = FeatureExtractor(str(killed)).shard_size
    proc = subprocess.Popen(_child_cmd(args, "run", killed, n), stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT)
    target = max(1, round(n / 2 / shard_size))
    while proc.poll() is None and len(list(killed.glob("*/shard-*.parquet"))) < target:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    backbone = _backbone(args)
    model = backbone.build()
    store = FeatureExtractor(str(killed)).store_for(backbone, _mri(args), model)
    paths = ensure_bench_images(n, log=lambda *_: None)
    missing = store.missing(list(paths))
    rerun = subprocess.run(_child_cmd(args, "run", killed, n), stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT)
    recomputed = _child_result(rerun.stdout)["n_computed"]
    subprocess.run(_child_cmd(args, "run", clean, n), stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT, check=True)
    reference = FeatureExtractor(str(clean)).store_for(backbone, _mri(args), model)
    a, b = store.load(list(paths)), reference.load(list(paths))
    return {
        "n_images": n,
        "shard_size": shard_size,
        "committed_before_kill": n - len(missing),
        "missing_after_kill": len(missing),
        "recomputed_on_rerun": recomputed,
        "recomputed_equals_missing": recomputed == len(missing),
        "bitwise_equal_to_uninterrupted": len(a) == len(b) == n and all(np.array_equal(a[h], b[h]) for h in paths),
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.child:
        child(args)
        return {}
    import numpy as np

    from brainscan_exp.features import FeatureExtractor, runtimes
    from brainscan_exp.features.runtimes import runtime_info

    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="bench_features_"))
    if args.precision_only:
        result = {"env": env_info(), "args": vars(args), "bars": BARS}
        result["env"]["cpu"] = runtime_info("openvino", "fp32")
        collections = real_collections(Path(args.data), Path(args.data_second))
        result["precision"] = precision_table(args, work, _mri(args), collections)
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
        write_json(result, args.out)
        print(f"wrote {args.out}")
        return result
    backbone, mri = _backbone(args), _mri(args)
    model = backbone.build()
    labelled, labels, unlabelled = real_images(Path(args.data), args.unlabelled)
    real = labelled + unlabelled
    generated = ensure_bench_images(max([args.stage_images, *args.sizes, args.kill_images]))
    result = {"env": env_info(), "args": vars(args), "bars": BARS, "runtimes": {}}
    result["env"]["cpu"] = runtime_info("openvino", "fp32")
    embeddings = {}
    variants = [(r, "fp32", None) for r in args.runtimes]
    default_hint = runtimes.OPENVINO_HINT
    if "openvino" in args.runtimes:
        other = "THROUGHPUT" if default_hint == "LATENCY" else "LATENCY"
        variants += [("openvino", "fp32", other), ("openvino", "bf16", None)]
    for runtime, precision, hint in variants:
        name = f"{runtime}/{precision}" + (f"/{hint}" if hint else "")
        runtimes.OPENVINO_HINT = hint or default_hint
        print(f"{name}:", flush=True)
        extractor = FeatureExtractor(str(work / "stage"), runtime=runtime, precision=precision, progress=False)
        start = time.perf_counter()
        embedder = extractor.embedder(backbone, mri, model)
        build_s = time.perf_counter() - start
        embeddings[name] = embedder.embed_batch(real)
        batch = embedder.decoder.decode(real[:32])
        row = {
            "build_seconds_first": build_s,
            "compute_batch": embedder.batch,
            "model_only_images_per_s": model_only(embedder, batch, args.repeats),
        }
        embedder.close()
        n_stage = args.stage_images // 4 if runtime == "torch" else args.stage_images
        paths = dict(list(generated.items())[:n_stage])
        stage = stage_rate(extractor, paths, backbone, mri, model, args.repeats)
        row.update(stage_images_per_s=stage["images_per_s"], stage_all=stage["all"], stage_n_images=n_stage)
        row["ratio"] = row["stage_images_per_s"] / row["model_only_images_per_s"]
        result["runtimes"][name] = row
        print(
            f"  model-only {row['model_only_images_per_s']:.1f} img/s, stage {row['stage_images_per_s']:.1f} img/s,"
            f" ratio {row['ratio']:.2f} (build {build_s:.1f} s)",
            flush=True,
        )
    runtimes.OPENVINO_HINT = default_hint
    result["openvino_hint"] = default_hint
    result["agreement"] = agreement(embeddings, labels)
    for name, row in result["agreement"].items():
        print(f"  {name}: max rel diff {row['max_rel_diff']:.2e}, CV AUC {row['cv_auc_3dp']:.3f}", flush=True)

    default = FeatureExtractor(str(work / "stage")).resolve_runtime()
    result["default_runtime"] = default
    collections = real_collections(Path(args.data), Path(args.data_second))
    rates = partial(paired_rates, work, backbone, mri, model, repeats=args.repeats)
    brief = {"brief": collections["brief"]}
    result["real_images"] = rates(collections, {"default": {}})
    result["compute_batch"] = rates(brief, {str(b): {"compute_batch": b} for b in args.compute_batches})
    result["stem_fold"] = rates(brief, {"folded": {}, "three_channels": {"fold_stem": False}})
    folded = FeatureExtractor(str(work / "stage"), progress=False).embedder(backbone, mri, model)
    unfolded = FeatureExtractor(str(work / "stage"), progress=False, fold_stem=False).embedder(backbone, mri, model)
    a, b = folded.embed_batch(real), unfolded.embed_batch(real)
    folded.close(), unfolded.close()
    result["stem_fold"]["max_rel_diff"] = float(rel_diff(a, b).max())
    result["resize"] = resize_table(real, mri)
    for name in ("real_images", "compute_batch", "stem_fold", "resize"):
        print(f"  {name}: {json.dumps(result[name])}", flush=True)
    sweep = {}
    for threads in args.decode_threads:
        extractor = FeatureExtractor(str(work / "stage"), runtime=default, decode_threads=threads, progress=False)
        paths = dict(list(generated.items())[: args.stage_images])
        sweep[str(threads)] = stage_rate(extractor, paths, backbone, mri, model, args.repeats)["images_per_s"]
        print(f"  {default} stage with {threads} decode threads: {sweep[str(threads)]:.1f} img/s", flush=True)
    result["decode_threads_sweep"] = sweep

    # draft mode: the default (DCT-downscaled to >= 2x the resize target), full decoding, and
    # DCT-downscaled straight to the resize target (the previous default)
    draft = {}
    for name, fast, factor in [("draft_2x", True, 2), ("full", False, None), ("draft_1x", True, 1)]:
        extractor = FeatureExtractor(str(work / "stage"), runtime=default, fast_decode=fast, progress=False)
        embedder = extractor.embedder(backbone, mri, model)
        transform = embedder.decoder.transform
        if factor:
            transform.draft_size = factor * transform.work_size
        draft[name] = embedder.embed_batch(real)
        start = time.perf_counter()
        for path in real[:200]:
            transform.grey_eval.array(transform.load(path))
        draft[f"ms_{name}"] = 1000 * (time.perf_counter() - start) / 200
        embedder.close()
    result["draft_decode"] = {
        "decode_ms_per_image_one_thread": {k: draft[f"ms_{k}"] for k in ("draft_2x", "full", "draft_1x")}
    }
    aucs = agreement(
        {"torch/fp32": draft["full"], "draft_2x": draft["draft_2x"], "draft_1x": draft["draft_1x"]}, labels
    )
    for name in ("draft_2x", "draft_1x"):
        rel = rel_diff(draft[name], draft["full"])
        result["draft_decode"][name] = {
            "max_rel_diff_vs_full": float(rel.max()),
            "median_rel_diff_vs_full": float(np.median(rel)),
            "cv_auc": aucs[name]["cv_auc_3dp"],
        }
    result["draft_decode"]["cv_auc_full"] = aucs["torch/fp32"]["cv_auc_3dp"]
    print(f"  draft vs full decode: {result['draft_decode']}", flush=True)

    result["precision"] = precision_table(args, work, mri, collections)
    if args.sizes:
        result["peak_rss"] = rss(args, work)
    if args.kill_images:
        result["kill_test"] = kill_test(args, work)
        print(f"  kill test: {result['kill_test']}", flush=True)
    main_row = result["runtimes"].get(f"{default}/fp32", {})
    real_rows = {k: row for k, row in result["real_images"]["default"].items() if isinstance(row, dict)}
    result["verdict"] = {
        "stage_images_per_s": main_row.get("stage_images_per_s"),
        "stage_bar_met": (main_row.get("stage_images_per_s") or 0) >= BARS["stage_images_per_s_min"],
        "ratio": main_row.get("ratio"),
        "ratio_bar_met": (main_row.get("ratio") or 0) >= BARS["ratio_min"],
        "real_stage_images_per_s": {k: row["stage_images_per_s"] for k, row in real_rows.items()},
        "real_stage_bar_met": all(
            row["stage_images_per_s"] >= BARS["stage_images_per_s_min"] for row in real_rows.values()
        ),
        "real_ratio": {k: row["ratio"] for k, row in real_rows.items()},
        "real_ratio_bar_met": all(row["ratio"] >= BARS["ratio_min"] for row in real_rows.values()),
        "agreement_bar_met": all(
            row["max_rel_diff"] < BARS["agreement_max_rel"]
            for name, row in result["agreement"].items()
            if name.endswith("fp32")
        ),
    }
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    write_json(result, args.out)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
