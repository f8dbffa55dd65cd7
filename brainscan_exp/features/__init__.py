"""The features stage: threaded decoding, a fast inference runtime, a sharded content-keyed store.

Names load on first use (PEP 562): reading the store (``features.store``, ``features.vectors``)
does not import the inference runtimes (torch, OpenVINO: about 1 GB of resident memory).
"""

from importlib import import_module

__all__ = ["Embedder", "EmbeddingStore", "FeatureExtractor", "feature_key"]

_HOME = {
    "Embedder": "brainscan_exp.features.extract",
    "FeatureExtractor": "brainscan_exp.features.extract",
    "EmbeddingStore": "brainscan_exp.features.store",
    "feature_key": "brainscan_exp.features.store",
}


def __getattr__(name: str):
    if name in _HOME:
        return getattr(import_module(_HOME[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
