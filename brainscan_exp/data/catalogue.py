"""The catalogue: every file of a dataset, identified by its pixel hash, with the duplicate rules.

Rules (the brief's dataset breaks each of them):
- byte- or pixel-identical copies are reported in ``duplicates``;
- a labelled image counts once (``labelled`` holds distinct images only);
- the same pixels under two labels stop the run (:class:`DuplicateLabelError`);
- the pool (``pool``) holds distinct unlabelled images that are not copies of a labelled one, so
  no evaluation image can leak into pseudo-labelling.
"""

from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from brainscan_exp.artefacts import atomic_write
from brainscan_exp.data.errors import BadImageError, DuplicateLabelError
from brainscan_exp.data.images import file_hash, load_image, pixel_hash
from brainscan_exp.data.layout import CLASS_NAMES, scan_layout

log = logging.getLogger(__name__)


@dataclass
class Catalogue:
    root: Path
    files: pd.DataFrame  # every readable file: file, path, label, pixel_hash, byte_hash
    labelled: pd.DataFrame  # distinct labelled images (one row per pixel hash)
    pool: pd.DataFrame  # distinct unlabelled images that are not copies of labelled ones
    duplicates: pd.DataFrame  # one row per file that shares its pixels with another file
    bad_files: pd.DataFrame  # files left out with on_bad_file=skip
    near_groups: dict[str, str] = field(default_factory=dict)  # pixel hash -> near-copy group (absent: its own)

    def group_of(self, hashes) -> list[str]:
        """Near-copy group of each pixel hash: exact copies share a hash, near copies a group."""
        return [self.near_groups.get(h, h) for h in hashes]

    def with_near_copies(self, near_groups: dict[str, str]) -> Catalogue:
        """The catalogue once near copies are known: labelled images carry their group, and pool
        images in a labelled image's group leave the pool (they are known, not new)."""
        cat = replace(self, near_groups=dict(near_groups))
        labelled = cat.labelled.assign(group=cat.group_of(cat.labelled.pixel_hash))
        pool = cat.pool[~pd.Series(cat.group_of(cat.pool.pixel_hash), index=cat.pool.index).isin(set(labelled.group))]
        return replace(cat, labelled=labelled.reset_index(drop=True), pool=pool.reset_index(drop=True))

    def unlabelled_files(self) -> pd.DataFrame:
        """Every ``sans_label`` file (copies included), with ``copy_of``: the labelled file whose
        pixels or near-copy group it shares ('' if none), and that file's ``copy_label``."""
        labelled = self.labelled.assign(group=self.group_of(self.labelled.pixel_hash))
        twin = labelled.drop_duplicates("group").set_index("group")
        files = self.files[self.files.label < 0].sort_values("file")
        groups = self.group_of(files.pixel_hash)
        copy_of = [twin.file.get(g, "") for g in groups]
        copy_label = [int(twin.label.get(g, -1)) for g in groups]
        return (
            files[["file", "path", "pixel_hash"]]
            .assign(group=groups, copy_of=copy_of, copy_label=copy_label)
            .reset_index(drop=True)
        )

    @property
    def fingerprint(self) -> str:
        """Content digest of the dataset: changes when any image or label changes."""
        rows = self.files.sort_values("file")[["file", "pixel_hash", "label"]].itertuples(index=False)
        return hashlib.sha256("\n".join(f"{f}\t{h}\t{y}" for f, h, y in rows).encode()).hexdigest()[:16]

    def summary(self) -> dict[str, int]:
        labelled_files = self.files[self.files.label >= 0]
        return {
            "n_files": len(self.files),
            "n_distinct": self.files.pixel_hash.nunique(),
            "n_labelled_files": len(labelled_files),
            "n_labelled_distinct": len(self.labelled),
            "n_labelled_cancer": int((self.labelled.label == 1).sum()),
            "n_labelled_normal": int((self.labelled.label == 0).sum()),
            "n_unlabelled_files": int((self.files.label < 0).sum()),
            "n_pool_distinct": len(self.pool),
            "n_pool_copies_of_labelled": int(
                (self.files.label < 0).mul(self.files.pixel_hash.isin(self.labelled.pixel_hash)).sum()
            ),
            "n_duplicate_groups": int(self.duplicates.group.nunique()) if len(self.duplicates) else 0,
            "n_bad_files": len(self.bad_files),
        }


INDEX_COLUMNS = ["path", "size", "mtime_ns", "pixel_hash", "byte_hash"]
HASH_CHUNK = 20_000  # files hashed between two saves of the index: what a kill can lose


def _hash_one(path: str) -> tuple[tuple[str, str] | None, str | None]:
    try:
        return (pixel_hash(load_image(path)), file_hash(path)), None
    except BadImageError as exc:  # the decoder's reason, without the path it repeats
        reason = str(exc.__cause__ or exc.what)
        return None, reason.replace(repr(str(path)), "").replace(str(path), "").strip(" :") or "unreadable"


def _hash_files(frame: pd.DataFrame, cache_path: Path | None, on_bad_file: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Decode every file once to hash its pixels; hashes are cached by (path, size, mtime).

    Decoding and hashing run on a thread pool (PIL and hashlib release the GIL), and the index is
    saved every ``HASH_CHUNK`` files, so an interrupted indexing of millions of files resumes.
    Every file is checked before anything is raised, so one error lists every bad file; the
    hashes of the good ones are saved first, so the rerun after a fix decodes only what changed."""
    cached: dict[tuple[str, int, int], tuple[str, str]] = {}
    if cache_path is not None and cache_path.exists():
        old = pd.read_parquet(cache_path)
        cached = {(p, s, m): (ph, bh) for p, s, m, ph, bh in old.itertuples(index=False)}
    keys = []
    for path in frame.path:
        stat = Path(path).stat()
        keys.append((str(path), stat.st_size, stat.st_mtime_ns))
    todo = [key for key in keys if key not in cached]
    errors: dict[tuple[str, int, int], str] = {}

    def save(index: pd.DataFrame) -> None:
        if cache_path is not None:  # parallel jobs never read a half-written index
            atomic_write(cache_path, lambda tmp: index.to_parquet(tmp, index=False))

    with ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1))) as pool:
        for start in range(0, len(todo), HASH_CHUNK):
            chunk = todo[start : start + HASH_CHUNK]
            for key, (hashes, error) in zip(chunk, pool.map(_hash_one, [k[0] for k in chunk])):
                if hashes is None:
                    errors[key] = error
                else:
                    cached[key] = hashes
            if start + HASH_CHUNK < len(todo):
                save(pd.DataFrame([(*k, *v) for k, v in cached.items()], columns=INDEX_COLUMNS))
    rows = [(*key, *cached[key]) for key in keys if key in cached]
    bad = [{"path": key[0], "error": errors[key]} for key in keys if key in errors]
    index = pd.DataFrame(rows, columns=INDEX_COLUMNS)
    save(index)
    bad = pd.DataFrame(bad, columns=["path", "error"])
    if len(bad) and on_bad_file != "skip":
        raise BadImageError(
            f"{len(bad)} file(s) cannot be decoded as images:",
            [f"{p}  ({e})" for p, e in bad.itertuples(index=False)],
            "delete or replace them, then run again (files already read are not decoded again); "
            "or add dataset.on_bad_file=skip to leave them out and list them in bad_files.csv.",
        )
    for p, e in bad.itertuples(index=False):
        log.warning("left out (dataset.on_bad_file=skip): %s: %s", p, e)
    hashed = frame.assign(path=frame.path.astype(str)).merge(index[["path", "pixel_hash", "byte_hash"]], on="path")
    return hashed, bad


def _duplicate_report(files: pd.DataFrame) -> pd.DataFrame:
    groups = files.groupby("pixel_hash")
    dup = files[groups.file.transform("size") > 1].copy()
    if dup.empty:
        return pd.DataFrame(columns=["group", "file", "label", "pixel_hash", "byte_identical", "kind"])
    dup["group"] = dup.groupby("pixel_hash").ngroup()
    dup["byte_identical"] = dup.groupby("pixel_hash").byte_hash.transform("nunique") == 1
    has_labelled = dup.groupby("pixel_hash").label.transform("max") >= 0
    has_pool = dup.groupby("pixel_hash").label.transform("min") < 0
    dup["kind"] = "pool-pool"
    dup.loc[has_labelled & ~has_pool, "kind"] = "labelled-labelled"
    dup.loc[has_labelled & has_pool, "kind"] = "labelled-pool"
    return dup.sort_values(["group", "file"])[["group", "file", "label", "pixel_hash", "byte_identical", "kind"]]


def build_catalogue(root: str | Path, cache_dir: str | Path | None = None, on_bad_file: str = "error") -> Catalogue:
    """Scan, decode and hash a dataset in the brief's layout, applying the duplicate rules."""
    if on_bad_file not in {"error", "skip"}:
        raise ValueError(f"dataset.on_bad_file must be 'error' or 'skip', got {on_bad_file!r}")
    root = Path(root).expanduser().resolve()
    frame = scan_layout(root)
    cache_path = None
    if cache_dir is not None:
        cache_path = Path(cache_dir) / "hash_index" / f"{hashlib.sha1(str(root).encode()).hexdigest()[:16]}.parquet"
    files, bad = _hash_files(frame, cache_path, on_bad_file)

    labelled_files = files[files.label >= 0]
    conflicts = labelled_files.groupby("pixel_hash").label.nunique()
    conflicts = conflicts[conflicts > 1]
    if len(conflicts):
        lines = [
            ", ".join(
                f"{f} ({CLASS_NAMES[y]})"
                for f, y in labelled_files[labelled_files.pixel_hash == h][["file", "label"]].itertuples(index=False)
            )
            for h in conflicts.index
        ]
        raise DuplicateLabelError(
            f"{len(conflicts)} image(s) under {root} carry both labels (the same pixels in cancer/ and normal/):",
            lines,
            "ask the radiologist which label is right, delete the other copy, then run again.",
        )
    labelled = labelled_files.sort_values("file").drop_duplicates("pixel_hash").reset_index(drop=True)
    labelled = labelled.assign(group=labelled.pixel_hash)
    pool = files[(files.label < 0) & ~files.pixel_hash.isin(labelled.pixel_hash)]
    pool = pool.sort_values("file").drop_duplicates("pixel_hash").reset_index(drop=True)
    catalogue = Catalogue(root, files.reset_index(drop=True), labelled, pool, _duplicate_report(files), bad)
    log.info(catalogue_line(catalogue))
    return catalogue


def catalogue_line(catalogue: Catalogue) -> str:
    """The catalogue in one readable line (the run's first)."""
    s = catalogue.summary()
    line = (
        f"dataset {catalogue.root}: {s['n_files']} files, {s['n_distinct']} distinct images; "
        f"{s['n_labelled_distinct']} labelled ({s['n_labelled_cancer']} cancer, {s['n_labelled_normal']} normal), "
        f"{s['n_pool_distinct']} to label"
    )
    if s["n_pool_copies_of_labelled"]:
        line += f"; {s['n_pool_copies_of_labelled']} unlabelled file(s) are copies of labelled images"
    if s["n_bad_files"]:
        line += f"; {s['n_bad_files']} unreadable file(s) left out (bad_files.csv)"
    return line
