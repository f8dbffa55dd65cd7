"""The features stage's two engines on the same images: ``features.engine=local`` vs ``ray``.

Both run ``FeatureExtractor.run`` with the same backbone, preprocessing and runtime (the CPU
default unless ``--runtime``), each into its own empty store:
- ``local``: one process, the runtime on every core, decoding on a thread;
- ``ray``: a Ray Data actor pool (``--actors`` x ``--cpus-per-actor``) on a local Ray started and
  stopped by the call; ``wall_s`` includes Ray's start and each actor's model load, ``seconds``
  is the engine's own clock;
- ``max_rel_diff``: largest ||ray - local|| / ||local|| over images: actors run the runtime with
  their CPU share of threads, which may change the last bits (the bar is the runtimes' 1e-4).
One machine measures the engine's overhead; the speed-up comes from a cluster's nodes.

Usage::

    python scripts/bench_engines.py                       # the brief's images
    python scripts/bench_engines.py --data /path/to/folder --limit 500
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PROJECT_ROOT, RESULTS_DIR, env_info, write_json

DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data" / "mri_dataset_brain_cancer_oc"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=0, help="first N distinct images (0 = all)")
    parser.add_argument("--runtime", default="auto")
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--cpus-per-actor", type=float, default=1)
    parser.add_argument("--shard-size", type=int, default=256)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "bench_engines.json")
    args = parser.parse_args(argv)

    import numpy as np
    from hydra.utils import instantiate

    from brainscan_exp.data import build_catalogue
    from brainscan_exp.features import FeatureExtractor
    from brainscan_exp.notebook import compose_config

    work = Path(tempfile.mkdtemp(prefix="bench_engines_"))
    catalogue = build_catalogue(args.data, cache_dir=work / "index")
    paths = dict(zip(catalogue.files.pixel_hash, catalogue.files.path))
    if args.limit:
        paths = dict(list(paths.items())[: args.limit])
    cfg = compose_config(["dataset=oc"])
    backbone, mri = instantiate(cfg.backbone), instantiate(cfg.preprocess)
    model = backbone.build()

    results, vectors = {}, {}
    for engine in ("local", "ray"):
        extractor = FeatureExtractor(
            cache_dir=str(work / engine),
            runtime=args.runtime,
            shard_size=args.shard_size,
            progress=False,
            engine=engine,
            ray_actors=args.actors,
            ray_cpus_per_actor=args.cpus_per_actor,
        )
        start = time.perf_counter()
        store, stats = extractor.run(paths, backbone, mri, model)
        wall = time.perf_counter() - start
        vectors[engine] = store.load(list(paths))
        results[engine] = stats | {
            "wall_s": wall,
            "wall_images_per_s": len(paths) / wall,
            "shards": len(store.shards()),
        }
        print(
            f"{engine:>5}: {len(paths)} images, {stats['images_per_s']:.1f} img/s ({len(paths) / wall:.1f} with start-up)"
        )
    local, ray = vectors["local"], vectors["ray"]
    rel = max(float(np.linalg.norm(ray[h] - local[h]) / np.linalg.norm(local[h])) for h in local)
    result = {
        "script": "scripts/bench_engines.py",
        "args": {k: str(v) for k, v in vars(args).items()},
        "env": env_info() | {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
        "n_images": len(paths),
        "engines": results,
        "max_rel_diff": rel,
        "same_hashes": local.keys() == ray.keys(),
        "ray_over_local": results["ray"]["images_per_s"] / results["local"]["images_per_s"],
    }
    print(f"ray vs local: max relative difference {rel:.1e}, ray/local rate {result['ray_over_local']:.2f}")
    write_json(result, args.out)
    return result


if __name__ == "__main__":
    main()
