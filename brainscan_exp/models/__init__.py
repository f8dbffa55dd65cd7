"""Backbones (timm, with offline weights) and the LightningModule that classifies tumours."""

from brainscan_exp.models.backbones import Backbone, WeightsUnavailableError
from brainscan_exp.models.classifier import TumourClassifier

__all__ = ["Backbone", "TumourClassifier", "WeightsUnavailableError"]
