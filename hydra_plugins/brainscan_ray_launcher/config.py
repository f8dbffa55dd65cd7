# ruff: noqa: UP006, UP035, UP045 - typing generics on purpose: see the docstring
"""The launcher's structured config, registered as ``hydra/launcher=brainscan_ray``.

``conf/hydra/launcher/ray.yaml`` extends it; Hydra imports this module during its plugin scan, so
it imports nothing heavy (no Ray). No ``from __future__ import annotations``: Hydra loads plugin
modules outside ``sys.modules``, where string annotations of a dataclass cannot be resolved.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class BrainscanRayLauncherConf:
    _target_: str = "hydra_plugins.brainscan_ray_launcher.launcher.BrainscanRayLauncher"
    # null: a local Ray started for the sweep (and stopped after); "auto" / "ray://head:10001": a cluster
    address: Optional[str] = None
    # ray.init keyword arguments (num_cpus for a local Ray, runtime_env, namespace, ...)
    init: Dict[str, Any] = field(default_factory=lambda: {"include_dashboard": False})
    # ray.remote options of each job: its resources, and no automatic retry (a retried job would
    # write a second MLflow run)
    remote: Dict[str, Any] = field(default_factory=lambda: {"num_cpus": 1, "num_gpus": 0, "max_retries": 0})


ConfigStore.instance().store(
    group="hydra/launcher", name="brainscan_ray", node=BrainscanRayLauncherConf, provider="brainscan_exp"
)
