"""The plain-function API under the stages: no Hydra, no MLflow, explicit arguments.

data -> :mod:`.embed` (vectors) -> :mod:`.predict` (fit, out-of-fold and pool scores) ->
:mod:`.calibrate` (operating point, pool estimate, triage) -> :mod:`.evaluate` (scores against a
truth); :mod:`.scenarios` builds the generalization benchmark's shifted pools.
"""
