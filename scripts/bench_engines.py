"""Local sequential extraction vs ``extract_with_ray`` (Ray Data actor pool) on the same images.

What it measures, and why:
- ``local``: one process embeds the images in batches (torch uses every core): the baseline the
  Ray path must match in output and should not lose much to on one machine;
- ``ray``: ``extract_with_ray`` with ``--actors`` actors of ``--cpus-per-actor`` CPUs on a local
  Ray started by the call (``wall_s`` includes Ray's start and the actors' model loads;
  ``seconds`` is the engine's own clock: dataset execution, actor start-up included);
- ``max_rel_diff``: largest |ray - local| / (|local| + 1e-6) over every vector component (near-zero
  components inflate it), ``max_rel_diff_norm``: largest ||ray - local|| / ||local|| per image, and
  ``allclose`` at rtol 1e-4: Ray actors run torch with fewer threads than the local process (one
  per actor CPU), which changes float summation order, so the last bits may differ;
  ``bitwise_identical_to_local_with_N_threads`` compares Ray with a local pass at the actors' thread
  count: true means the engine itself changes nothing;
- one machine only measures the engine's overhead; the speed-up comes from a cluster's nodes.

The embedder is this script's own (backbone built from the Hydra config, ``ImageTransform``,
fixed model batches of 8, zero-padded), so the comparison needs nothing but the engine.

Usage::

    python scripts/bench_engines.py --limit 256                    # a subset of the brief's images
    python scripts/bench_engines.py --data /path/to/folder --limit 0   # every image (0 = all)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PROJECT_ROOT, RESULTS_DIR, write_json

DEFAULT_DATA = Path(os.environ.get("BRAINSCAN_DATA_DIR", "/work/shared/data")) / "mri_dataset_brain_cancer_oc"
COMPUTE_BATCH = 8  # fixed model batch: an image's vector does not depend on its batch neighbours


class BackboneEmbedder:
    """Picklable factory and embedder: built from plain dicts, so Ray ships it to each actor."""

    def __init__(self, backbone_cfg: dict, preprocess_cfg: dict, threads: int | None = None):
        self.backbone_cfg, self.preprocess_cfg, self.threads = backbone_cfg, preprocess_cfg, threads
        self.model = None

    def __call__(self, paths: list[str] | None = None):
        """Without arguments: the built embedder (Ray's ``make_embedder``); with paths: vectors."""
        if paths is None:
            built = BackboneEmbedder(self.backbone_cfg, self.preprocess_cfg, self.threads)
            built._build()
            return built
        return self.embed(paths)

    def _build(self) -> None:
        import torch
        from hydra.utils import instantiate

        from brainscan_exp.preprocessing import ImageTransform

        if self.threads:
            torch.set_num_threads(self.threads)
        backbone = instantiate(self.backbone_cfg)
        self.model = backbone.build().eval()
        self.transform = ImageTransform(backbone.data_config, instantiate(self.preprocess_cfg), train=False)

    def embed(self, paths: list[str]):
        import numpy as np
        import torch

        batch = torch.stack([self.transform(p) for p in paths])
        out = []
        with torch.inference_mode():
            for chunk in torch.split(batch, COMPUTE_BATCH):
                n = len(chunk)
                if n < COMPUTE_BATCH:
                    chunk = torch.cat([chunk, chunk.new_zeros((COMPUTE_BATCH - n, *chunk.shape[1:]))])
                out.append(self.model(chunk)[:n].float().numpy())
        return np.concatenate(out).astype(np.float32)


def configs(backbone: str) -> tuple[dict, dict]:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"backbone={backbone}", f"paths.root_dir={PROJECT_ROOT}"])
    return (
        OmegaConf.to_container(cfg.backbone, resolve=True),
        OmegaConf.to_container(cfg.preprocess, resolve=True),
    )


def list_images(root: Path, limit: int) -> list[str]:
    """Labelled then unlabelled JPEGs in a fixed order; an evenly spaced subset with ``limit``."""
    paths = sorted(str(p) for p in (root / "avec_labels").glob("*/*.jpg")) + sorted(
        str(p) for p in (root / "sans_label").glob("*.jpg")
    )
    if not paths:
        raise SystemExit(f"no images under {root} (avec_labels/<class>/*.jpg, sans_label/*.jpg)")
    if limit and limit < len(paths):
        step = len(paths) / limit
        paths = [paths[int(i * step)] for i in range(limit)]
    return paths


def main(argv=None) -> dict:
    import numpy as np
    import torch

    from brainscan_exp.features.ray_engine import extract_with_ray

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--limit", type=int, default=256, help="images (evenly spaced); 0 = all")
    p.add_argument("--backbone", default="tf_efficientnet_lite0")
    p.add_argument("--batch-size", type=int, default=32, help="local batch and Ray map_batches batch / shard size")
    p.add_argument("--actors", type=int, default=None, help="Ray actors (default: cores / cpus-per-actor)")
    p.add_argument("--cpus-per-actor", type=float, default=1)
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "bench_engines.json")
    args = p.parse_args(argv)

    paths = list_images(args.data, args.limit)
    keys = [hashlib.sha1(p.encode()).hexdigest() for p in paths]  # stands in for the pixel hash
    backbone_cfg, preprocess_cfg = configs(args.backbone)
    cores = os.cpu_count() or 1
    print(f"{len(paths)} images from {args.data}; backbone {args.backbone}; {cores} cores", flush=True)

    start = time.perf_counter()
    local = BackboneEmbedder(backbone_cfg, preprocess_cfg)()
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    local_vectors = np.concatenate(
        [local.embed(paths[i : i + args.batch_size]) for i in range(0, len(paths), args.batch_size)]
    )
    local_s = time.perf_counter() - start
    print(f"local: {len(paths) / local_s:.1f} img/s ({local_s:.1f} s, model build {build_s:.1f} s)", flush=True)

    got: dict[str, np.ndarray] = {}
    shard_sizes: list[int] = []

    def write_shard(hashes, vectors):
        shard_sizes.append(len(hashes))
        got.update(zip(hashes, vectors))

    threads = max(1, int(args.cpus_per_actor))
    start = time.perf_counter()
    stats = extract_with_ray(
        list(zip(keys, paths)),
        BackboneEmbedder(backbone_cfg, preprocess_cfg, threads=threads),
        write_shard,
        batch_size=args.batch_size,
        num_actors=args.actors,
        cpus_per_actor=args.cpus_per_actor,
    )
    ray_wall = time.perf_counter() - start
    print(f"ray: {stats['images_per_s']:.1f} img/s on {stats['num_actors']} actors (wall {ray_wall:.1f} s)", flush=True)

    if sorted(got) != sorted(keys):
        raise SystemExit(f"ray returned {len(got)} vectors for {len(keys)} images")
    ray_vectors = np.stack([got[k] for k in keys])

    # the same local pass with the actors' thread count: isolates the engine from torch's threading
    local_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    same_threads = np.concatenate(
        [local.embed(paths[i : i + args.batch_size]) for i in range(0, len(paths), args.batch_size)]
    )
    torch.set_num_threads(local_threads)
    rel = np.abs(ray_vectors - local_vectors) / (np.abs(local_vectors) + 1e-6)
    result = {
        "data": str(args.data),
        "n_images": len(paths),
        "backbone": args.backbone,
        "dim": int(local_vectors.shape[1]),
        "batch_size": args.batch_size,
        "cores": cores,
        "torch": torch.__version__,
        "ray_version": __import__("ray").__version__,
        "local": {
            "threads": local_threads,
            "model_build_s": build_s,
            "seconds": local_s,
            "images_per_s": len(paths) / local_s,
        },
        "ray": {
            "num_actors": stats["num_actors"],
            "cpus_per_actor": args.cpus_per_actor,
            "torch_threads_per_actor": threads,
            "seconds": stats["seconds"],
            "images_per_s": stats["images_per_s"],
            "wall_s": ray_wall,
            "wall_images_per_s": len(paths) / ray_wall,
            "n_shards": stats["n_shards"],
            "max_shard": max(shard_sizes),
        },
        "max_rel_diff": float(rel.max()),
        # per image: ||ray - local|| / ||local||, insensitive to near-zero components
        "max_rel_diff_norm": float(
            (np.linalg.norm(ray_vectors - local_vectors, axis=1) / np.linalg.norm(local_vectors, axis=1)).max()
        ),
        "max_abs_diff": float(np.abs(ray_vectors - local_vectors).max()),
        "allclose_rtol_1e-4": bool(np.allclose(ray_vectors, local_vectors, rtol=1e-4, atol=1e-5)),
        "bitwise_identical": bool(np.array_equal(ray_vectors, local_vectors)),
        f"bitwise_identical_to_local_with_{threads}_threads": bool(np.array_equal(ray_vectors, same_threads)),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json(result, args.out)
    print(f"max relative difference {result['max_rel_diff']:.2e}; wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
