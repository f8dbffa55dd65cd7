"""The features stage: threaded decoding, a fast inference runtime, a sharded content-keyed store."""

from brainscan_exp.features.extract import Embedder, FeatureExtractor
from brainscan_exp.features.store import EmbeddingStore, feature_key

__all__ = ["Embedder", "EmbeddingStore", "FeatureExtractor", "feature_key"]
