"""brainscan_exp: few-label brain-tumour detection experiments (Hydra + Lightning + MLflow)."""

__version__ = "0.1.0"
