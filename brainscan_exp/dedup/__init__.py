"""Near-copy detection: images that are the same slice flipped, rotated, cropped, resized or
re-contrasted (pixel-identical copies are the catalogue's job).

Pipeline: dihedral perceptual hashes (:mod:`.hashing`) -> sub-quadratic candidate pairs from band
buckets and optional embedding neighbours (:mod:`.candidates`) -> geometric confirmation with
ORB then SIFT + RANSAC (:mod:`.confirm`) -> connected components (:mod:`.groups`), wrapped in the
:class:`NearCopyFinder` estimator (:mod:`.finder`); :mod:`.figures` draws the borderline pairs.
"""

from .candidates import (
    band_collisions,
    band_values,
    embedding_candidates,
    family_distance,
    hamming,
    hash_candidates,
    merge_candidates,
    required_bands,
)
from .confirm import ConfirmParams, FeatureCache, PairResult, confirm_pairs, prepare_image
from .figures import plot_uncertain_pairs
from .finder import PAIR_COLUMNS, NearCopyFinder, duplicates_table
from .groups import NO_GROUP, connected_groups
from .hashing import FAMILIES, HASH_METHODS, N_TRANSFORMS, compute_hashes, dihedral, hash_image, head_box, load_grey

__all__ = [
    "FAMILIES",
    "HASH_METHODS",
    "NO_GROUP",
    "N_TRANSFORMS",
    "PAIR_COLUMNS",
    "ConfirmParams",
    "FeatureCache",
    "NearCopyFinder",
    "PairResult",
    "band_collisions",
    "band_values",
    "compute_hashes",
    "confirm_pairs",
    "connected_groups",
    "dihedral",
    "duplicates_table",
    "embedding_candidates",
    "family_distance",
    "hamming",
    "hash_candidates",
    "hash_image",
    "head_box",
    "load_grey",
    "merge_candidates",
    "plot_uncertain_pairs",
    "prepare_image",
    "required_bands",
]
