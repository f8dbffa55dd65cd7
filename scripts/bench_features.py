"""Benchmark of the features stage (``FeatureExtractor.run``) on generated 512x512 JPEG slices.

What it measures, and why:
- ``stage_images_per_s``: throughput of the whole stage (decode in DataLoader workers, MRI steps,
  timm transform, model in fixed chunks of COMPUTE_BATCH, streaming writes to the store) on the
  first dataset size, fresh cache, in a fresh process;
- ``model_only_images_per_s``: the backbone alone on random tensors of the shape the stage feeds it
  (COMPUTE_BATCH x C x H x W, inference_mode, same torch thread count), after warm-up: the best this
  machine can do. ``ratio`` = stage / model-only says how much the input pipeline costs (bar >= 0.85);
- ``peak_rss_mb`` per dataset size, each in a fresh subprocess (this script re-invoked with the hidden
  ``--child`` option) so sizes do not contaminate each other: ``main`` is the stage process
  (``RUSAGE_SELF``), ``children_max`` the largest DataLoader worker (``RUSAGE_CHILDREN``).
  ``rss_growth`` = relative growth from the smallest to the largest size: the stage streams, so
  memory must not grow with the dataset (bar < 10 %). Measured after ``run()`` and before loading
  the vectors back (the loaded vectors are the result, not the stage's working memory);
- ``cached_rerun_seconds`` / ``cached_ratio``: a second ``run()`` on the same store reads it and
  computes nothing (bar: < 5 % of the first run);
- ``bitwise_identical``: the same images embedded with (batch_size, default workers), (batch 7,
  0 workers) and again (batch_size, default workers) with a freshly built model give identical bytes;
- diagnostics: per-image decode+transform cost in one thread, the time the model itself took inside
  the stage (forward hooks), and ``ideal_ratio_cpu_bound``, the ratio one would get if decoding and
  the model shared the cores perfectly.

Generated images are cached by index (image i depends only on (seed, i)) in a temp folder, so the
smaller set is a prefix of the larger one and reruns skip the generation.

Usage::

    python scripts/bench_features.py --sizes 2000 8000          # full benchmark (quiet machine)
    python scripts/bench_features.py --sizes 64 128 --repeats 1 --model-only-batches 10  # smoke test
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PROJECT_ROOT, RESULTS_DIR, default_image_dir, ensure_bench_images, env_info, peak_rss_mb, write_json

CHILD_MARKER = "@@BENCH_CHILD_RESULT@@ "
BARS = {"ratio_min": 0.85, "rss_growth_max": 0.10, "cached_ratio_max": 0.05}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--backbone", default="tf_efficientnet_lite0")
    p.add_argument("--weights", default="imagenet", help="imagenet | none | path to a checkpoint")
    p.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000], help="dataset sizes; throughput on the first")
    p.add_argument("--batch-size", type=int, default=32, help="DataLoader batch size")
    p.add_argument("--num-workers", type=int, default=None, help="DataLoader workers (default: the package default)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's default)")
    p.add_argument("--preprocess", choices=["default", "mri"], default="default", help="MRI steps (default: identity)")
    p.add_argument(
        "--model-only-batches", type=int, default=100, help="timed model-only batches of COMPUTE_BATCH images"
    )
    p.add_argument("--model-only-warmup", type=int, default=5, help="untimed warm-up batches")
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="repeats of the model-only timing and of the first-size stage run (median)",
    )
    p.add_argument(
        "--decode-n", type=int, default=200, help="images for the single-thread decode-cost diagnostic (0: skip)"
    )
    p.add_argument("--bitwise-n", type=int, default=64, help="images for the bitwise check (0: skip)")
    p.add_argument(
        "--image-dir", default=None, help="generated-image cache (default: <tmp>/brainscan_bench_images/...)"
    )
    p.add_argument("--work-dir", default=None, help="where the fresh feature caches go (default: a temp dir, deleted)")
    p.add_argument("--gen-workers", type=int, default=None, help="processes generating images (default: cpu count)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS_DIR / "bench_features.json"))
    # hidden: one stage run in a fresh process
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-cache-dir", default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-rerun", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def make_mri(name: str):
    from brainscan_exp.preprocessing import MRIPreprocess

    return (
        MRIPreprocess()
        if name == "default"
        else MRIPreprocess(head_crop=True, intensity="percentile", equalize="clahe")
    )


def set_threads(threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)


class ForwardTimer:
    """Forward hooks that sum the wall time of the model's own calls (no change to its weights/digest)."""

    def __init__(self, model):
        self.seconds, self.calls, self.rows, self._t = 0.0, 0, 0, None
        self.handles = [model.register_forward_pre_hook(self._pre), model.register_forward_hook(self._post)]

    def _pre(self, module, inputs):
        self._t = time.perf_counter()
        self.rows += len(inputs[0])

    def _post(self, module, inputs, output):
        self.seconds += time.perf_counter() - self._t
        self.calls += 1

    def remove(self):
        for h in self.handles:
            h.remove()


# ---------------------------------------------------------------------------------------------
# child: one stage run in a fresh process


def child_main(args) -> None:
    import numpy as np
    import torch

    from brainscan_exp.features.extract import FeatureExtractor, default_workers
    from brainscan_exp.models.backbones import Backbone

    set_threads(args.threads)
    n = args.child
    paths = ensure_bench_images(n, args.image_dir, args.seed, log=lambda *_: None)
    backbone = Backbone(args.backbone, args.weights)
    model = backbone.build()
    mri = make_mri(args.preprocess)
    extractor = FeatureExtractor(
        args.child_cache_dir, batch_size=args.batch_size, num_workers=args.num_workers, device="cpu", progress=False
    )
    rss_before = peak_rss_mb()

    timer = ForwardTimer(model)
    start = time.perf_counter()
    store, stats = extractor.run(paths, backbone, mri, model)
    run_wall = time.perf_counter() - start
    timer.remove()
    rss = peak_rss_mb()  # before loading the vectors back: the stage's own peak

    start = time.perf_counter()
    vectors = store.load(list(paths))
    load_seconds = time.perf_counter() - start
    if stats["n_computed"] != n or len(vectors) != n:
        raise RuntimeError(f"stage computed {stats['n_computed']} and stored {len(vectors)} of {n} images")
    result = {
        "n": n,
        "torch_threads": torch.get_num_threads(),
        "num_workers": default_workers(torch.device("cpu")) if args.num_workers is None else args.num_workers,
        "stage_seconds": stats["seconds"],
        "stage_images_per_s": stats["images_per_s"],
        "run_wall_seconds": run_wall,  # whole run(): digest, store lookup, extraction, writes
        "load_seconds": load_seconds,
        "model_seconds_in_stage": timer.seconds,
        "model_calls": timer.calls,
        "model_rows_incl_padding": timer.rows,
        "model_images_per_s_in_stage": timer.rows / timer.seconds if timer.seconds else None,
        "waiting_for_input_seconds": stats["seconds"] - timer.seconds,
        "peak_rss_mb_after_model_build": rss_before["main"],
        "peak_rss_mb": rss,
    }
    if args.child_rerun:
        start = time.perf_counter()
        store2, stats2 = extractor.run(paths, backbone, mri, model)
        rerun_wall = time.perf_counter() - start
        start = time.perf_counter()
        vectors2 = store2.load(list(paths))
        rerun_load = time.perf_counter() - start
        same = len(vectors2) == n and all(np.array_equal(vectors[h], vectors2[h]) for h in paths)
        result.update(
            cached_rerun_seconds=rerun_wall,
            cached_rerun_load_seconds=rerun_load,
            cached_rerun_n_computed=stats2["n_computed"],
            cached_rerun_same_vectors=bool(same),
        )
    print(CHILD_MARKER + json.dumps(result), flush=True)


def run_child(args, n: int, cache_dir: Path, rerun: bool) -> dict:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        str(n),
        "--child-cache-dir",
        str(cache_dir),
        "--backbone",
        args.backbone,
        "--weights",
        args.weights,
        "--batch-size",
        str(args.batch_size),
        "--preprocess",
        args.preprocess,
        "--image-dir",
        str(args.image_dir),
        "--seed",
        str(args.seed),
    ]
    if args.num_workers is not None:
        cmd += ["--num-workers", str(args.num_workers)]
    if args.threads is not None:
        cmd += ["--threads", str(args.threads)]
    if rerun:
        cmd.append("--child-rerun")
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(CHILD_MARKER)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"child run (n={n}) failed with code {proc.returncode}; stdout:\n{proc.stdout[-2000:]}")
    return json.loads(lines[-1][len(CHILD_MARKER) :])


# ---------------------------------------------------------------------------------------------
# parent measurements


def model_only(backbone, model, batches: int, warmup: int) -> dict:
    """The backbone alone on random input of the stage's chunk shape, after warm-up."""
    import torch

    from brainscan_exp.features.extract import COMPUTE_BATCH

    x = torch.randn(COMPUTE_BATCH, *backbone.data_config["input_size"], generator=torch.Generator().manual_seed(0))
    model = model.eval()
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        start = time.perf_counter()
        for _ in range(batches):
            model(x)
        seconds = time.perf_counter() - start
    return {"batches": batches, "seconds": seconds, "images_per_s": batches * COMPUTE_BATCH / seconds}


def decode_cost(backbone, mri, paths: list[str]) -> dict:
    """Decode + MRI steps + timm transform of each path in ONE thread, as a DataLoader worker does."""
    import torch

    from brainscan_exp.preprocessing import ImageTransform

    transform = ImageTransform(backbone.data_config, mri, train=False, fast_decode=True)
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # DataLoader workers run with one torch thread
    try:
        transform(paths[0])  # warm-up
        start = time.perf_counter()
        for path in paths:
            transform(path)
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(old)
    return {
        "n": len(paths),
        "ms_per_image": 1000 * seconds / len(paths),
        "images_per_s_one_thread": len(paths) / seconds,
    }


def bitwise_check(args, paths: dict[str, str], work: Path) -> dict:
    """Same images, three runs: (batch_size, default workers), (7, 0 workers), (batch_size, default) again."""
    import numpy as np

    from brainscan_exp.features.extract import FeatureExtractor
    from brainscan_exp.models.backbones import Backbone

    backbone, mri = Backbone(args.backbone, args.weights), make_mri(args.preprocess)
    configs = {
        "a_default": (args.batch_size, args.num_workers),
        "b_batch7_workers0": (7, 0),
        "c_default_again": (args.batch_size, args.num_workers),
    }
    got = {}
    for name, (batch_size, workers) in configs.items():
        extractor = FeatureExtractor(
            str(work / f"bitwise_{name}"), batch_size=batch_size, num_workers=workers, device="cpu", progress=False
        )
        store, stats = extractor.run(paths, backbone, mri, backbone.build())  # freshly built model each time
        got[name] = store.load(list(paths))
    ref = got["a_default"]
    detail = {}
    for name, vecs in got.items():
        diffs = [float(np.max(np.abs(ref[h] - vecs[h]))) for h in paths]
        detail[name] = {
            "n": len(vecs),
            "identical": len(vecs) == len(paths) and all(ref[h].tobytes() == vecs[h].tobytes() for h in paths),
            "max_abs_diff": max(diffs),
        }
    return {
        "n": len(paths),
        "configs": {k: {"batch_size": b, "num_workers": w} for k, (b, w) in configs.items()},
        "runs": detail,
        "bitwise_identical": all(d["identical"] for d in detail.values()),
    }


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main(argv=None) -> dict | None:
    args = parse_args(argv)
    if args.child is not None:
        child_main(args)
        return None

    set_threads(args.threads)
    import torch

    from brainscan_exp.features.extract import default_workers
    from brainscan_exp.models.backbones import Backbone

    sizes = list(args.sizes)
    if any(b <= a for a, b in zip(sizes, sizes[1:])):
        raise SystemExit("--sizes must be increasing, e.g. --sizes 2000 8000")
    args.image_dir = Path(args.image_dir) if args.image_dir else default_image_dir(args.seed)
    env = env_info()
    workers = default_workers(torch.device("cpu")) if args.num_workers is None else args.num_workers
    print(
        f"bench_features: {args.backbone}, sizes {sizes}, batch {args.batch_size}, workers {workers}, "
        f"torch threads {torch.get_num_threads()}, cpus {env['cpu_count']}",
        flush=True,
    )

    all_paths = ensure_bench_images(
        max(sizes + [args.bitwise_n, args.decode_n]), args.image_dir, args.seed, args.gen_workers
    )
    hashes = list(all_paths)
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="bench_features_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        backbone = Backbone(args.backbone, args.weights)
        model = backbone.build()
        input_size = list(backbone.data_config["input_size"])

        model_runs = []
        for r in range(args.repeats):
            model_runs.append(model_only(backbone, model, args.model_only_batches, args.model_only_warmup))
            print(f"model-only {r + 1}/{args.repeats}: {model_runs[-1]['images_per_s']:.1f} img/s", flush=True)
        del model
        decode = None
        if args.decode_n:
            decode = decode_cost(backbone, make_mri(args.preprocess), [all_paths[h] for h in hashes[: args.decode_n]])
            print(f"decode+transform (1 thread): {decode['ms_per_image']:.2f} ms/image", flush=True)

        per_size, stage_runs = {}, []
        for i, n in enumerate(sizes):
            for r in range(args.repeats if i == 0 else 1):
                res = run_child(args, n, work / f"n{n}_r{r}", rerun=(i == 0 and r == 0))
                print(
                    f"stage n={n} run {r + 1}: {res['stage_images_per_s']:.1f} img/s, "
                    f"peak RSS main {res['peak_rss_mb']['main']:.0f} MB, worker max {res['peak_rss_mb']['children_max']:.0f} MB"
                    + (f", cached rerun {res['cached_rerun_seconds']:.3f} s" if "cached_rerun_seconds" in res else ""),
                    flush=True,
                )
                if i == 0:
                    stage_runs.append(res)
                if r == 0:
                    per_size[n] = res
                shutil.rmtree(work / f"n{n}_r{r}", ignore_errors=True)

        bitwise = None
        if args.bitwise_n:
            bitwise = bitwise_check(args, {h: all_paths[h] for h in hashes[: args.bitwise_n]}, work)
            print(f"bitwise identical over {args.bitwise_n} images: {bitwise['bitwise_identical']}", flush=True)
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)

    stage_ips = median([r["stage_images_per_s"] for r in stage_runs])
    model_ips = median([r["images_per_s"] for r in model_runs])
    ratio = stage_ips / model_ips if stage_ips and model_ips else None
    first = per_size[sizes[0]]
    cached_ratio = first["cached_rerun_seconds"] / first["run_wall_seconds"]
    peak = {str(n): per_size[n]["peak_rss_mb"] for n in sizes}
    growth = None
    if len(sizes) > 1:
        lo, hi = per_size[sizes[0]]["peak_rss_mb"], per_size[sizes[-1]]["peak_rss_mb"]
        growth = {k: (hi[k] - lo[k]) / lo[k] if lo[k] else None for k in ("main", "children_max")}
    ideal = None
    if decode:
        # cores shared perfectly: per image, the model needs cores/model_ips core-seconds, decoding d
        cores = env["cpu_affinity"] or env["cpu_count"]
        d = decode["ms_per_image"] / 1000
        ideal = 1 / (1 + model_ips * d / min(cores, torch.get_num_threads())) if cores else None
    result = {
        "script": "scripts/bench_features.py",
        "args": {k: v for k, v in vars(args).items() if not k.startswith("child")},
        "env": env,
        "backbone": args.backbone,
        "input_size": input_size,
        "batch_size": args.batch_size,
        "num_workers": workers,
        "sizes": sizes,
        "stage_images_per_s": stage_ips,
        "model_only_images_per_s": model_ips,
        "ratio": ratio,
        "peak_rss_mb": peak,
        "rss_growth": growth,
        "first_run_seconds": first["run_wall_seconds"],
        "cached_rerun_seconds": first["cached_rerun_seconds"],
        "cached_ratio": cached_ratio,
        "cached_rerun_n_computed": first["cached_rerun_n_computed"],
        "bitwise_identical": bitwise["bitwise_identical"] if bitwise else None,
        "diagnostics": {
            "decode": decode,
            "ideal_ratio_cpu_bound": ideal,
            "model_images_per_s_in_stage": median([r["model_images_per_s_in_stage"] for r in stage_runs]),
            "waiting_for_input_share": median(
                [r["waiting_for_input_seconds"] / r["stage_seconds"] for r in stage_runs]
            ),
        },
        "bars": {
            **BARS,
            "ratio_ok": ratio is not None and ratio >= BARS["ratio_min"],
            "rss_growth_ok": growth is not None
            and all(g is not None and g < BARS["rss_growth_max"] for g in growth.values()),
            "cached_ok": cached_ratio < BARS["cached_ratio_max"] and first["cached_rerun_n_computed"] == 0,
            "bitwise_ok": bool(bitwise and bitwise["bitwise_identical"]),
        },
        "model_only_runs": model_runs,
        "stage_runs": stage_runs,
        "per_size": {str(n): r for n, r in per_size.items()},
        "bitwise": bitwise,
    }
    out = write_json(result, args.out)
    summary = {
        k: result[k]
        for k in (
            "stage_images_per_s",
            "model_only_images_per_s",
            "ratio",
            "peak_rss_mb",
            "rss_growth",
            "cached_rerun_seconds",
            "cached_ratio",
            "bitwise_identical",
            "bars",
        )
    }
    summary["diagnostics"] = result["diagnostics"]
    print(json.dumps(summary, indent=2, default=str))
    print(f"written {out}")
    return result


if __name__ == "__main__":
    main()
