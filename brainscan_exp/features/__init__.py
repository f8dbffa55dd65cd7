"""The features stage: streaming extraction into a content-keyed embedding store."""

from brainscan_exp.features.extract import FeatureExtractor, extract_embeddings
from brainscan_exp.features.store import EmbeddingStore, feature_key

__all__ = ["EmbeddingStore", "FeatureExtractor", "extract_embeddings", "feature_key"]
