"""Scale benchmark: the near-copy stage, the store and predict-like scoring at 100 k, 250 k and 1 M
images on this machine, and what that says about 4 M.

The corpus is synthetic but built from real material:

- **sources**: the project's embeddings (Lite2, feature levels 2-4: the predict default, 520
  dimensions) and dihedral perceptual hashes of the distinct images of the brief's dataset and of
  ``brain_mri_oc`` (about 2,900 images);
- **base images** (80 %): a random source's vector plus Gaussian noise (relative scale
  ``--base-noise``: two base images of one source sit at a cosine distance of about its square,
  beyond the stage's 0.1, so they are different images) and its hashes with each bit flipped with
  probability ``--base-flip`` (two such images differ by ~40 bits of 128 per family, far beyond 22);
  0.5 % of them are **blank frames** (all-zero hashes with at most one bit flipped, one shared vector
  plus tiny noise): the bucket that made band hashing quadratic;
- **planted near copies** (20 %): a base image's vector plus smaller noise (cosine distance
  0.005-0.08, where the brief's confirmed copies sit) and its hashes under a random dihedral
  transform (a flip or rotation permutes the 8 transform columns) with 0-4 bits flipped per hash.

Every size is written in the store's shard format (``EmbeddingStore.write_shard``, 4,096 vectors per
shard). Each stage runs in a fresh child process (this script with ``--child``): its wall time
and its peak RSS (``os.wait4``'s rusage of that child) are measured, and the growth exponent
between sizes is ``log(t2 / t1) / log(n2 / n1)``. Stages:

- ``corpus``: generate and write the shards and hashes (bench only);
- ``store``: ``EmbeddingStore.table()``: the shards consolidated into one float32 memmap + index;
- ``hash_candidates``: band buckets (the finder's ``n_bands="auto"``: 2 bands of 32 bits from
  50,000 images; buckets over 4,096 entries split, then chained);
- ``ann``: embedding neighbours through the chosen faiss index (built from the memmap in blocks);
- ``merge_cap``: both routes merged, cheap signals, at most ``max_candidates`` per image; planted
  copy recall and confirmations per image;
- ``predict``: ``experiment=predict``'s work with its configuration (regime, operating point,
  bootstrap, reads budget): ``core.predict.predict_pool`` on the brief's labelled images with the
  corpus as the pool, read lazily from the store's memmap in chunks, then the triage and
  ``predictions.csv``. Not included: scanning a million image files into a catalogue;
- ``review``: one ``experiment=review`` batch: the same fit, then ``choose_reads`` with the
  configured strategy, batch size and audit share (bar for both: peak RSS <= 3 GB, growth
  exponent <= 1.1).

Geometric confirmation needs the pixels, so it is not run on the synthetic corpus: its cost per
pair is measured on the brief's real candidate pairs (``brief``), and multiplied by the pairs the
1 M run sends to it. The ``brief`` block also compares the stage's groups with and without the
per-image cap on the brief's data. The ANN choice (``ann_choice``) compares faiss HNSW / IVF and
usearch against exact kNN (faiss flat) at 100 k, every 5th image querying the whole index: recall
of the planted copies that exact kNN finds, and recall@k of the neighbour lists. Every figure is labelled ``measured`` or ``extrapolated``.

Usage::

    python scripts/bench_scale.py                       # 100 k, 250 k, 1 M (~40 min on 2 cores)
    python scripts/bench_scale.py --sizes 20000 50000   # quick
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "scripts" / "results"

KEYS = ("full_phash", "full_dhash", "head_phash", "head_dhash")
STAGES = ("corpus", "store", "hash_candidates", "ann", "merge_cap", "predict", "review")
RECIPE_FINDER = {"max_bucket": 4096}  # the README's 4 M recipe; everything else the finder's defaults
ANN_CANDIDATES = {
    "faiss IVF{nlist},Flat nprobe=8": ("faiss", "IVF{nlist},Flat", "nprobe=8"),
    "faiss IVF{nlist},Flat nprobe=16": ("faiss", "IVF{nlist},Flat", "nprobe=16"),
    "faiss IVF{nlist},SQ8 nprobe=8": ("faiss", "IVF{nlist},SQ8", "nprobe=8"),
    "faiss PCA128,IVF{nlist},Flat nprobe=16": ("faiss", "PCA128,IVF{nlist},Flat", "nprobe=16"),
    "faiss HNSW32 efSearch=128": ("faiss", "HNSW32", "efSearch=128"),
    "usearch HNSW f16 (defaults)": ("usearch", "f16", ""),
}
DEFAULT_ANN = ("IVF{nlist},Flat", "nprobe=8")  # without --skip-ann-choice, the bench's choice
ANN_QUERY_STEP = 5  # the ANN choice queries every 5th image (20,000 of 100 k) against the whole index


def finder():
    """The near-copy finder the 4 M recipe runs (``conf/train.yaml``'s, with the recipe's overrides)."""
    from brainscan_exp.dedup import NearCopyFinder

    return NearCopyFinder(**RECIPE_FINDER)


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 250_000, 1_000_000])
    ap.add_argument("--work", type=Path, default=ROOT / "cache" / "bench_scale")
    ap.add_argument("--copy-rate", type=float, default=0.2)
    ap.add_argument("--blank-rate", type=float, default=0.005)
    ap.add_argument("--base-noise", type=float, default=0.35)
    ap.add_argument("--base-flip", type=float, default=0.2)
    ap.add_argument("--ann-sample", type=int, default=100_000)
    ap.add_argument("--skip-brief", action="store_true", help="skip the finder run on the brief's images")
    ap.add_argument("--skip-ann-choice", action="store_true", help="use --ann-index/--ann-search as given")
    ap.add_argument("--ann-index", default=DEFAULT_ANN[0])
    ap.add_argument("--ann-search", default=DEFAULT_ANN[1])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--review-batches",
        type=int,
        nargs="*",
        default=[1000, 5000],
        help="review rounds of these sizes at the largest size (the 4 M recipe: 5,000 reads for EUR 5,000)",
    )
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="take a stage's result from its log in --work when one is there (same settings assumed)",
    )
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_scale.json")
    ap.add_argument("--child", nargs=2, metavar=("STAGE", "N"), help=argparse.SUPPRESS)
    return ap.parse_args(argv)


# ---------------------------------------------------------------- real sources


def _catalogue_and_store(dataset: str):
    from hydra.utils import instantiate

    from brainscan_exp.notebook import compose_config

    cfg = compose_config([f"dataset={dataset}", "experiment=predict"])
    catalogue = instantiate(cfg.dataset)
    backbone = instantiate(cfg.backbone)
    model = backbone.build()
    mri = instantiate(cfg.preprocess)
    extractor = instantiate(cfg.features, progress=False, export=False)
    paths = dict(zip(catalogue.files.pixel_hash, catalogue.files.path))
    store, _ = extractor.run(paths, backbone, mri, model)  # computes only what is missing
    return cfg, catalogue, store


def real_sources(work: Path) -> dict:
    """Vectors, hashes, paths and labels of both datasets' distinct images (cached in ``work``)."""
    cache = work / "sources.npz"
    if cache.exists():
        data = np.load(cache, allow_pickle=False)
        return {k: data[k] for k in data.files}
    from brainscan_exp.dedup import compute_hashes

    vectors, hashes, paths, labels, dataset, hash_s = [], {k: [] for k in KEYS}, [], [], [], 0.0
    for name in ("oc", "brain_mri_oc"):
        _, catalogue, store = _catalogue_and_store(name)
        distinct = catalogue.files.drop_duplicates("pixel_hash").reset_index(drop=True)
        vectors.append(store.table().take(distinct.pixel_hash.to_numpy()))
        t0 = time.perf_counter()
        h = compute_hashes(distinct.path.tolist())
        hash_s += time.perf_counter() - t0
        for k in KEYS:
            hashes[k].append(h[k])
        paths += distinct.path.tolist()
        labels += distinct.label.fillna("").astype(str).tolist()
        dataset += [name] * len(distinct)
    out = {
        "vectors": np.concatenate(vectors).astype(np.float32),
        **{k: np.concatenate(v) for k, v in hashes.items()},
        "paths": np.array(paths),
        "labels": np.array(labels),
        "dataset": np.array(dataset),
        "hash_seconds": np.array(hash_s),
    }
    work.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **out)
    return out


# ---------------------------------------------------------------- synthetic corpus


def _dihedral_composition() -> np.ndarray:
    """``comp[k, t]``: transform k applied after transform t, as one transform index."""
    from brainscan_exp.dedup import N_TRANSFORMS, dihedral

    grid = np.arange(9).reshape(3, 3)
    images = [dihedral(grid, k) for k in range(N_TRANSFORMS)]
    comp = np.zeros((N_TRANSFORMS, N_TRANSFORMS), dtype=np.int64)
    for t in range(N_TRANSFORMS):
        for k in range(N_TRANSFORMS):
            both = dihedral(images[t], k)
            comp[k, t] = next(m for m in range(N_TRANSFORMS) if np.array_equal(both, images[m]))
    return comp


def _flip_bits(codes: np.ndarray, prob: np.ndarray | float, rng) -> np.ndarray:
    """Each of the 64 bits of ``codes`` flipped with ``prob`` (broadcast per row)."""
    bits = rng.random(codes.shape + (64,)) < np.asarray(prob).reshape((-1,) + (1,) * codes.ndim)
    weights = np.left_shift(np.uint64(1), np.arange(64, dtype=np.uint64))
    mask = (bits * weights).sum(-1, dtype=np.uint64)
    return np.bitwise_xor(codes, mask)


def _flip_k_bits(codes: np.ndarray, k: np.ndarray, rng) -> np.ndarray:
    """Exactly ``k[r]`` distinct bits flipped in each row's every column of ``codes`` ``(n, T)``."""
    n, n_t = codes.shape
    keys = rng.random((n, n_t, 64)).argsort(-1)[..., :4]  # up to 4 distinct positions
    use = np.arange(4)[None, None, :] < k[:, None, None]
    mask = (np.left_shift(np.uint64(1), keys.astype(np.uint64)) * use).sum(-1, dtype=np.uint64)
    return np.bitwise_xor(codes, mask)


def corpus_dir(work: Path, n: int) -> Path:
    return work / f"corpus-{n}"


def make_corpus(args, n: int) -> dict:
    """Write the size-``n`` corpus (store shards, hashes, planted truth) under ``work``."""
    from brainscan_exp.features.store import EmbeddingStore

    src = real_sources(args.work)
    V, m = src["vectors"], len(src["vectors"])
    rng = np.random.default_rng(args.seed + n)
    out = corpus_dir(args.work, n)
    out.mkdir(parents=True, exist_ok=True)
    n_copy = int(round(args.copy_rate * n))
    n_base = n - n_copy
    n_blank = int(round(args.blank_rate * n_base))
    source = rng.integers(0, m, n_base)
    blank = np.zeros(n_base, dtype=bool)
    blank[rng.choice(n_base, n_blank, replace=False)] = True
    normal = np.flatnonzero(~blank)
    parent = np.full(n, -1, dtype=np.int64)
    parent[n_base:] = rng.choice(normal, n_copy, replace=True)
    copy_noise = rng.uniform(0.1, 0.4, n_copy)
    transform = rng.integers(0, 8, n_copy)
    n_flips = rng.integers(0, 5, (n_copy, len(KEYS)))
    comp = _dihedral_composition()
    order = rng.permutation(n)  # planted copies spread over the corpus, not at its end
    row_of = np.empty(n, dtype=np.int64)
    row_of[order] = np.arange(n)  # item -> row in the corpus
    dim = V.shape[1]
    norms = np.linalg.norm(V, axis=1)
    blank_vector = V.mean(0) * 0.2

    # hashes: bases, then copies from their parents (all in memory: 4 x (n, 8) uint64)
    hashes = {}
    for c, key in enumerate(KEYS):
        h = np.empty((n, 8), dtype=np.uint64)
        h[:n_base] = _flip_bits(src[key][source], args.base_flip, rng)
        h[:n_base][blank] = _flip_bits(np.zeros((n_blank, 8), np.uint64), 1 / 64, rng)
        parent_h = h[parent[n_base:]]
        permuted = parent_h[np.arange(n_copy)[:, None], comp[np.arange(8)[None, :], transform[:, None]]]
        h[n_base:] = _flip_k_bits(permuted, n_flips[:, c], rng)
        hashes[key] = h[order]
        np.save(out / f"{key}.npy", hashes[key])

    # vectors: bases (in blocks, bounded temporaries), then copies from their parents
    X = np.empty((n, dim), np.float32)
    block = 100_000
    for s in range(0, n_base, block):
        src_s = source[s : s + block]
        noise = rng.standard_normal((len(src_s), dim), dtype=np.float32)
        X[s : s + len(src_s)] = V[src_s] + (args.base_noise * norms[src_s] / math.sqrt(dim))[:, None] * noise
    X[np.flatnonzero(blank)] = blank_vector + 0.01 * rng.standard_normal((n_blank, dim), dtype=np.float32)
    for s in range(0, n_copy, block):
        par = X[parent[n_base + s : n_base + s + block]]
        scale = copy_noise[s : s + block] * np.linalg.norm(par, axis=1) / math.sqrt(dim)
        noise = rng.standard_normal(par.shape, dtype=np.float32)
        X[n_base + s : n_base + s + len(par)] = par + scale[:, None] * noise
    # written in corpus order (rows), 4,096 vectors per shard, named by row
    store = EmbeddingStore(out / "store", {"bench_scale": n, "seed": args.seed})
    for old in store.shards():
        old.unlink()
    shard = 4096
    for s in range(0, n, shard):
        items = order[s : s + shard]
        store.write_shard([f"{int(r):040x}" for r in range(s, s + len(items))], X[items])
    del X
    truth = pd.DataFrame({"copy": row_of[n_base:], "parent": row_of[parent[n_base:]]})
    truth.to_parquet(out / "planted.parquet", index=False)
    np.save(out / "blank.npy", np.sort(row_of[:n_base][blank]))
    (out / "done").write_text("ok")
    return {"n": n, "n_copies": n_copy, "n_blank": n_blank}


# ---------------------------------------------------------------- stages (children)


def _aligned(args, n: int):
    """The corpus' store table, and its hashes, planted pairs and blank frames in the table's row
    order (shards are named by uuid, so matrix row k is corpus row ``int(hash_k, 16)``)."""
    cdir = corpus_dir(args.work, n)
    table = _store(args, n).table()
    perm = np.array([int(h, 16) for h in table.hashes], dtype=np.int64)  # matrix row -> corpus row
    inv = np.empty_like(perm)
    inv[perm] = np.arange(len(perm))
    hashes = {k: np.load(cdir / f"{k}.npy")[perm] for k in KEYS}
    truth = pd.read_parquet(cdir / "planted.parquet")
    truth = pd.DataFrame({"copy": inv[truth["copy"].to_numpy()], "parent": inv[truth["parent"].to_numpy()]})
    return table, hashes, truth, inv[np.load(cdir / "blank.npy")]


def _store(args, n: int):
    from brainscan_exp.features.store import EmbeddingStore

    return EmbeddingStore(corpus_dir(args.work, n) / "store", {"bench_scale": n, "seed": args.seed})


def stage_store(args, n: int) -> dict:
    table = _store(args, n).table()
    return {"rows": len(table), "dim": table.dim, "matrix_bytes": int(table.matrix.nbytes)}


def stage_hash_candidates(args, n: int) -> dict:
    from brainscan_exp.dedup import hash_candidates
    from brainscan_exp.dedup.candidates import band_values

    cdir = corpus_dir(args.work, n)
    _, hashes, _, _ = _aligned(args, n)
    f = finder()
    n_bands = f._bands(n)
    cands = hash_candidates(hashes, f.hash_families, f.max_hamming, n_bands, f.max_bucket)
    cands.to_parquet(cdir / "hash_pairs.parquet", index=False)
    # the largest band bucket (canonical x transformed entries), the quadratic risk the split bounds
    bands = band_values(hashes["full_phash"], n_bands)
    largest = 0
    for b in range(n_bands):
        _, canon_counts = np.unique(bands[:, 0, b], return_counts=True)
        _, trans_counts = np.unique(bands[:, :, b].ravel(), return_counts=True)
        largest = max(largest, int(canon_counts.max()) * int(trans_counts.max()))
    return {"pairs": len(cands), "n_bands": n_bands, "largest_bucket_entries_full_phash": largest}


def stage_ann(args, n: int) -> dict:
    from brainscan_exp.dedup import embedding_candidates

    cdir = corpus_dir(args.work, n)
    table = _store(args, n).table()
    ann, f = (args.ann_index, args.ann_search), finder()
    knn = embedding_candidates(table.matrix, f.n_neighbors, f.max_cosine, *ann)
    knn.to_parquet(cdir / "knn_pairs.parquet", index=False)
    return {"pairs": len(knn), "index": ann[0], "search": ann[1]}


def stage_merge_cap(args, n: int) -> dict:
    from brainscan_exp.dedup import merge_candidates
    from brainscan_exp.dedup.candidates import cap_per_image

    cdir = corpus_dir(args.work, n)
    table, hashes, truth, blank = _aligned(args, n)
    hashed = pd.read_parquet(cdir / "hash_pairs.parquet")
    knn = pd.read_parquet(cdir / "knn_pairs.parquet")
    f = finder()
    merged = merge_candidates(hashed, knn, hashes, table.matrix)
    capped = cap_per_image(merged, f.max_candidates, f.max_hamming, f.max_cosine)
    lo = np.minimum(truth["copy"].to_numpy(), truth.parent.to_numpy())
    hi = np.maximum(truth["copy"].to_numpy(), truth.parent.to_numpy())
    planted = set((lo * n + hi).tolist())
    keys = capped.i.to_numpy(np.int64) * n + capped.j.to_numpy(np.int64)
    found = np.isin(np.fromiter(planted, np.int64), keys)
    merged_keys = merged.i.to_numpy(np.int64) * n + merged.j.to_numpy(np.int64)
    # a planted copy also counts as found when it reaches its parent through candidate pairs
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(capped)), (capped.i.to_numpy(), capped.j.to_numpy())), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    linked = comp[truth["copy"].to_numpy()] == comp[truth.parent.to_numpy()]
    per_image = np.bincount(np.concatenate([capped.i.to_numpy(), capped.j.to_numpy()]), minlength=n)
    blank_pairs = np.isin(capped.i.to_numpy(), blank) | np.isin(capped.j.to_numpy(), blank)
    by_source = capped.source.value_counts().to_dict()
    return {
        "pairs_before_cap": len(merged),
        "pairs_to_confirm": len(capped),
        "confirmations_per_image": len(capped) / n,
        "max_candidates_per_image": int(per_image.max()),
        "planted_pairs": len(planted),
        "planted_pair_recall": float(found.mean()),
        "planted_pair_recall_before_cap": float(np.isin(np.fromiter(planted, np.int64), merged_keys).mean()),
        "planted_copy_linked_recall": float(linked.mean()),
        "pairs_touching_blank_frames": int(blank_pairs.sum()),
        "pairs_by_source": {k: int(v) for k, v in by_source.items()},
    }


def _predict_setup(args):
    """The predict experiment's estimator and operating point, and the brief's labelled images
    (distinct, from the sources) as the labelled set."""
    from hydra.utils import instantiate

    from brainscan_exp.notebook import compose_config
    from brainscan_exp.stages.predict import operating_point

    cfg = compose_config(["experiment=predict"])
    src = real_sources(args.work)
    lab = np.flatnonzero(np.isin(src["labels"], ["0", "1"]) & (src["dataset"] == "oc"))  # 1 = tumour
    regime = instantiate(cfg.regime.method)
    return cfg, regime, operating_point(cfg), src["vectors"][lab], (src["labels"][lab] == "1").astype(int)


def _predict(args, n: int):
    """``core.predict.predict_pool`` on the corpus as the pool, read lazily from the store's
    memmap (the predict stage's path), at the delivery target."""
    from dataclasses import replace

    from hydra.utils import instantiate

    from brainscan_exp.core.predict import predict_pool

    cfg, regime, op, X_lab, y_lab = _predict_setup(args)
    table = _store(args, n).table()
    pool = table.view(table.hashes)  # the stage's Prepared.view(pool): rows of the memmap, no copy
    op = replace(op, target_sensitivity=float(cfg.review.delivery_sensitivity))
    scorer = instantiate(cfg.predict)  # predict.engine: local here
    prediction = predict_pool(
        regime.estimator, X_lab, y_lab, pool, op, semi_supervised=regime.semi_supervised, score_pool=scorer
    )
    return cfg, table, pool, X_lab, prediction


def stage_predict(args, n: int) -> dict:
    """experiment=predict's work on a pool of ``n``: fit, score the pool in chunks, threshold,
    the pool estimate with its bootstrap, the triage, and predictions.csv written."""
    from brainscan_exp.core.calibrate import reads_for_budget
    from brainscan_exp.core.predict import predictions_table

    cfg, table, _, _, prediction = _predict(args, n)
    t0 = time.perf_counter()
    files = np.char.add(np.char.decode(table.hashes), ".jpg")
    reads = reads_for_budget(cfg.review.budget_eur, cfg.review.cost_per_read_eur)
    frame, _ = predictions_table(files, prediction, reads)
    frame.to_csv(corpus_dir(args.work, n) / "predictions.csv", index=False)
    return {
        "table_and_csv_seconds": time.perf_counter() - t0,
        "models": len(prediction.models),
        "n_boot": int(cfg.operating_point.n_boot),
        "mean_score": float(prediction.p_pool.mean()),
        "threshold": float(prediction.threshold),
        "n_review": int((frame.triage == "review").sum()),
    }


def stage_review(args, n: int, batch_size: int | None = None) -> dict:
    """One experiment=review batch on a pool of ``n``: the same fit, then the queue by the
    configured strategies (kcenter rounds; the batch size and audit share of ``review``, or
    ``batch_size`` reads)."""
    from brainscan_exp.core.review_queue import PoolView, choose_reads

    cfg, _, pool, X_lab, prediction = _predict(args, n)
    t0 = time.perf_counter()
    r = cfg.review
    view = PoolView.of(prediction, pool, X_lab)
    idx, reasons = choose_reads(r.strategy, view, batch_size or r.batch_size, r.audit_share, cfg.seed)
    return {
        "queue_seconds": time.perf_counter() - t0,
        "strategy": str(r.strategy),
        "batch": len(idx),
        "reasons": {k: int(v) for k, v in zip(*np.unique(reasons, return_counts=True))},
    }


def _peak_rss_mb() -> float:
    """This process' peak resident set (VmHWM: its own address space since exec, unlike
    ru_maxrss, which keeps the forking parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(args) -> None:
    import faiss  # noqa: F401  (imports outside the timed stage)
    import sklearn.linear_model  # noqa: F401

    import brainscan_exp.core.predict
    import brainscan_exp.core.review_queue
    import brainscan_exp.dedup
    import brainscan_exp.features.store
    import brainscan_exp.notebook  # noqa: F401

    stage, n = args.child[0], int(args.child[1])
    imports_mb = _peak_rss_mb()
    t0 = time.perf_counter()
    if stage == "corpus":
        extra = make_corpus(args, n)
    elif stage.startswith("review_batch_"):  # a review round of another size (the 4 M recipe's)
        extra = stage_review(args, n, int(stage.rsplit("_", 1)[1]))
    else:
        extra = globals()[f"stage_{stage}"](args, n)
    print(
        "RESULT "
        + json.dumps(
            {
                "seconds": time.perf_counter() - t0,
                **extra,
                "peak_rss_mb": _peak_rss_mb(),
                "rss_after_imports_mb": imports_mb,
            }
        ),
        flush=True,
    )


def run_child(args, stage: str, n: int) -> dict:
    cmd = [sys.executable, __file__, "--child", stage, str(n), "--work", str(args.work), "--seed", str(args.seed)]
    cmd += ["--copy-rate", str(args.copy_rate), "--blank-rate", str(args.blank_rate)]
    cmd += ["--base-noise", str(args.base_noise), "--base-flip", str(args.base_flip)]
    cmd += ["--ann-index", args.ann_index, "--ann-search", args.ann_search]
    log = args.work / f"{stage}-{n}.log"
    if args.reuse and log.exists() and "RESULT " in log.read_text():
        text = log.read_text()
        result = json.loads(next(line[7:] for line in text.splitlines() if line.startswith("RESULT ")))
        result |= {"label": "measured", "reused_from_log": True}
        print(f"  {stage:16s} n={n:>9,}  {result['seconds']:8.1f} s  {result['peak_rss_mb']:8.0f} MiB (log)")
        return result
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, _ = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    text = log.read_text()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{stage} at {n} failed:\n{text[-3000:]}")
    result = json.loads(next(line[7:] for line in text.splitlines() if line.startswith("RESULT ")))
    result["process_seconds"] = wall  # with interpreter start and imports
    result["label"] = "measured"
    print(f"  {stage:16s} n={n:>9,}  {result['seconds']:8.1f} s  {result['peak_rss_mb']:8.0f} MiB", flush=True)
    return result


# ---------------------------------------------------------------- ANN choice at 100 k


def ann_choice(args, n: int) -> dict:
    """Each candidate index against exact kNN (faiss flat inner product) on the size-``n`` corpus:
    every ``ANN_QUERY_STEP``-th image queries the whole index; a neighbour counts when its exact
    cosine distance is within the finder's (what ``embedding_candidates`` keeps)."""
    import faiss

    from brainscan_exp.dedup.candidates import _unit, ann_index, ivf_lists

    table, _, truth, _ = _aligned(args, n)
    X = _unit(table.matrix)
    q = np.arange(0, n, ANN_QUERY_STEP)
    f = finder()
    k, max_cos = f.n_neighbors, f.max_cosine
    lo = np.minimum(truth["copy"].to_numpy(), truth.parent.to_numpy())
    hi = np.maximum(truth["copy"].to_numpy(), truth.parent.to_numpy())
    planted = np.unique(lo * n + hi)

    def planted_found(nbrs) -> np.ndarray:
        i = np.repeat(q, nbrs.shape[1])
        j = nbrs.ravel()
        ok = (j >= 0) & (j != i)
        i, j = i[ok], j[ok]
        exact_cos = 1.0 - np.einsum("ij,ij->i", X[i], X[j])
        i, j = i[exact_cos <= max_cos], j[exact_cos <= max_cos]
        return np.intersect1d(planted, np.minimum(i, j) * n + np.maximum(i, j))

    t0 = time.perf_counter()
    flat = faiss.IndexFlatIP(X.shape[1])
    flat.add(X)
    _, exact = flat.search(X[q], k + 1)
    exact_s = time.perf_counter() - t0
    exact_planted = planted_found(exact)
    out = {
        "n": n,
        "queries": len(q),
        "k": k,
        "nlist": ivf_lists(n),
        "exact": {"seconds": exact_s, "planted_pairs_within_k_and_cosine": int(len(exact_planted))},
        "candidates": {},
    }
    for name, (lib, spec, params) in ANN_CANDIDATES.items():
        t0 = time.perf_counter()
        if lib == "faiss":
            idx = ann_index(X, spec, params)
            build = time.perf_counter() - t0
            _, nbrs = idx.search(X[q], k + 1)
        else:
            try:
                from usearch.index import Index
            except ImportError:  # not a dependency: pip install usearch to compare it
                out["candidates"][name] = {"skipped": "usearch not installed"}
                continue

            idx = Index(ndim=X.shape[1], metric="cos", dtype=spec)
            idx.add(np.arange(n), X)
            build = time.perf_counter() - t0
            nbrs = idx.search(X[q], k + 1).keys.astype(np.int64)
        total = time.perf_counter() - t0
        search = total - build
        recall_k = np.mean([len(np.intersect1d(a, b)) / (k + 1) for a, b in zip(nbrs, exact)])
        found = planted_found(nbrs)
        out["candidates"][name] = {
            "build_seconds": build,
            "search_seconds": search,
            "all_queries_seconds_estimate": build + search * ANN_QUERY_STEP,
            "planted_recall_vs_exact": float(np.isin(exact_planted, found).mean()),
            "recall_at_k_vs_exact": float(recall_k),
        }
        c = out["candidates"][name]
        print(
            f"  {name:40s} {c['all_queries_seconds_estimate']:7.1f} s  planted recall {c['planted_recall_vs_exact']:.4f}"
        )
    return out


# ---------------------------------------------------------------- the brief's data


def brief(args) -> dict:
    """The stage's finder on the brief's distinct images with their embeddings: all candidates
    (the previous behaviour) against the per-image cap, and the confirmation cost per pair."""
    from brainscan_exp.dedup import NearCopyFinder, connected_groups
    from brainscan_exp.dedup.candidates import cap_per_image

    src = real_sources(args.work)
    mask = src["dataset"] == "oc"
    paths, X = src["paths"][mask].tolist(), src["vectors"][mask]
    hashes = {k: src[k][mask] for k in KEYS}
    finder = NearCopyFinder(max_candidates=None, verbose=True).fit(paths, X, hashes=hashes)
    pairs = finder.pairs_
    n = len(paths)
    groups_all = finder.groups_

    def partition(labels):
        return {frozenset(np.flatnonzero(labels == g).tolist()) for g in np.unique(labels[labels >= 0])}

    a = partition(groups_all)
    out = {
        "n_images": n,
        "candidates_all": len(pairs),
        "confirmed_all": int(pairs.confirmed.sum()),
        "groups_all": len(a),
        "images_in_groups_all": int((groups_all >= 0).sum()),
        "confirmation_seconds": finder.timings_["confirmation"],
        "confirmation_seconds_per_pair": finder.timings_["confirmation"] / max(1, len(pairs)),
        "hashing_seconds_per_image": float(src["hash_seconds"]) / len(src["vectors"]),
        "by_cap": {},
        "label": "measured",
    }
    for cap in (4, 6, 10):
        capped = cap_per_image(pairs, cap, finder.max_hamming, finder.max_cosine)
        conf_c = capped[capped.confirmed]
        groups_cap = connected_groups(n, conf_c[["i", "j"]].to_numpy(np.int64))
        b = partition(groups_cap)
        out["by_cap"][str(cap)] = {
            "candidates": len(capped),
            "confirmations_per_image": len(capped) / n,
            "confirmed": int(len(conf_c)),
            "groups": len(b),
            "identical_groups": len(a & b),
            "images_in_groups": int((groups_cap >= 0).sum()),
            "images_grouped_differently": int(sum(len(g) for g in a - b)),
        }
    return out


# ---------------------------------------------------------------- main


def _cached(args, name: str, compute) -> dict:
    """``compute()``, saved in ``--work``; with ``--reuse``, read back from there when present."""
    path = args.work / name
    if args.reuse and path.exists():
        print(f"  {name}: reused from {path}", flush=True)
        return json.loads(path.read_text())
    out = compute()
    path.write_text(json.dumps(out, indent=2, default=float))
    return out


def exponent(rows: dict, stage: str, key: str, a: int, b: int) -> float:
    return math.log(rows[b][stage][key] / rows[a][stage][key]) / math.log(b / a)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.child:
        child(args)
        return {}
    args.work.mkdir(parents=True, exist_ok=True)
    report: dict = {
        "command": "python scripts/bench_scale.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{os.cpu_count()} cores (shared), no GPU",
        "corpus": {
            "copy_rate": args.copy_rate,
            "blank_rate": args.blank_rate,
            "base_noise": args.base_noise,
            "base_flip": args.base_flip,
        },
    }
    src = real_sources(args.work)
    report["sources"] = {"images": len(src["vectors"]), "dim": int(src["vectors"].shape[1])}
    if not args.skip_brief:
        print("brief's data: finder with and without the per-image cap", flush=True)
        report["brief"] = _cached(args, "brief.json", lambda: brief(args))
    rows: dict[int, dict] = {n: {} for n in sorted(args.sizes)}
    if not args.skip_ann_choice:
        # the index is chosen first, on the ann-sample corpus, and every size then runs with it
        n = args.ann_sample
        print(f"ANN choice at {n:,}", flush=True)
        pre = {stage: run_child(args, stage, n) for stage in ("corpus", "store")}
        if n in rows:
            rows[n].update(pre)
        choice = _cached(args, f"ann_choice-{n}.json", lambda: ann_choice(args, n))
        ok = {
            name: c
            for name, c in choice["candidates"].items()
            if ANN_CANDIDATES[name][0] == "faiss" and c.get("planted_recall_vs_exact", 0) >= 0.95
        }
        best = min(ok, key=lambda name: ok[name]["all_queries_seconds_estimate"]) if ok else None
        if best is not None:
            args.ann_index, args.ann_search = ANN_CANDIDATES[best][1:]
        choice["chosen"] = best
        choice["rule"] = (
            "the fastest faiss index (build + every image queried, estimated from the sampled queries) "
            "whose planted-copy recall against exact kNN is >= 0.95"
        )
        report["ann_choice"] = choice
    f = finder()
    report["finder_at_scale"] = {
        "n_bands": "auto: 2 from 50,000 images",
        "max_bucket": f.max_bucket,
        "n_neighbors": f.n_neighbors,
        "max_cosine": f.max_cosine,
        "max_candidates": f.max_candidates,
        "ann_index": args.ann_index,
        "ann_search": args.ann_search,
    }
    for n in rows:
        print(f"size {n:,}", flush=True)
        for stage in STAGES:
            if stage not in rows[n]:
                rows[n][stage] = run_child(args, stage, n)
    report["sizes"] = {str(n): r for n, r in rows.items()}
    largest = max(rows)
    report["review_batches"] = {
        "n": largest,
        "batches": {str(b): run_child(args, f"review_batch_{b}", largest) for b in args.review_batches},
    }
    sizes = sorted(rows)
    growth = {}
    for a, b in zip(sizes, sizes[1:]):
        growth[f"{a}->{b}"] = {
            stage: {
                "time_exponent": exponent(rows, stage, "seconds", a, b),
                "rss_exponent": exponent(rows, stage, "peak_rss_mb", a, b),
            }
            for stage in STAGES
        }
    report["growth"] = growth
    if len(sizes) >= 2:
        a, b = sizes[-2], sizes[-1]
        target = 4_000_000
        extra = {}
        for stage in STAGES:
            e_t = max(1.0, exponent(rows, stage, "seconds", a, b))
            e_m = max(0.0, exponent(rows, stage, "peak_rss_mb", a, b))
            extra[stage] = {
                "seconds": rows[b][stage]["seconds"] * (target / b) ** e_t,
                "peak_rss_mb": rows[b][stage]["peak_rss_mb"] * (target / b) ** e_m,
                "label": f"extrapolated from {b:,} with the {a:,}->{b:,} exponents (time at least linear)",
            }
        mc = rows[b]["merge_cap"]
        if "brief" in report:
            per_pair = report["brief"]["confirmation_seconds_per_pair"]
            extra["confirmation"] = {
                "pairs": mc["confirmations_per_image"] * target,
                "seconds": mc["confirmations_per_image"] * target * per_pair,
                "label": "extrapolated: pairs per image at the largest size x 4 M x seconds per pair on the brief's pairs",
            }
            extra["hashing"] = {
                "seconds": report["brief"]["hashing_seconds_per_image"] * target,
                "label": "extrapolated: seconds per image on the real images x 4 M (one process, 2 cores)",
            }
        report["extrapolated_4M"] = extra
    print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=float))
    print(f"wrote {args.out}")
    return report


def print_table(report: dict) -> None:
    sizes = sorted(int(n) for n in report["sizes"])
    head = "| stage | " + " | ".join(f"{n:,}: s / MiB" for n in sizes) + " | time exp. | 4 M (extrapolated) |"
    print(head)
    print("|" + "---|" * (len(sizes) + 3))
    last = list(report["growth"])[-1] if report["growth"] else None
    for stage in STAGES:
        cells = [
            f"{report['sizes'][str(n)][stage]['seconds']:.1f} / {report['sizes'][str(n)][stage]['peak_rss_mb']:.0f}"
            for n in sizes
        ]
        exp = f"{report['growth'][last][stage]['time_exponent']:.2f}" if last else "-"
        x = report.get("extrapolated_4M", {}).get(stage)
        xs = f"{x['seconds']:.0f} s / {x['peak_rss_mb']:.0f} MiB" if x else "-"
        print(f"| {stage} | " + " | ".join(cells) + f" | {exp} | {xs} |")
    rb = report.get("review_batches", {})
    for b, r in rb.get("batches", {}).items():
        print(f"review round of {int(b):,} reads at n={rb['n']:,}: {r['seconds']:.1f} s, {r['peak_rss_mb']:.0f} MiB")
    for n in sizes:
        mc = report["sizes"][str(n)]["merge_cap"]
        print(
            f"n={n:,}: planted-copy recall {mc['planted_pair_recall']:.4f} (linked {mc['planted_copy_linked_recall']:.4f}), "
            f"{mc['confirmations_per_image']:.2f} confirmations per image, max {mc['max_candidates_per_image']}"
        )


if __name__ == "__main__":
    main()
