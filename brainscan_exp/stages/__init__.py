"""The pipeline's stages, in order: features -> cluster -> train (one fold) -> cv (all folds + aggregation).

Each stage reads the artefacts of the one before from the content-keyed cache, so re-running a
stage, or a sweep over later stages, never recomputes earlier ones.
"""
