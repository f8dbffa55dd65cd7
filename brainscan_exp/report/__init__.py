"""The hand-over deck (``task=report``) and the scale-up cost model (``scripts/cost_model.py``)."""
