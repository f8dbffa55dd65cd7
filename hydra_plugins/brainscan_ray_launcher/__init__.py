"""Hydra launcher running each job of a sweep as a Ray task (``hydra/launcher=ray``).

The official ``hydra-ray-launcher`` (1.2.2) pins ``cloudpickle<3`` (a downgrade of the 3.x this
environment runs) and pulls ``boto3`` and ``ray[default]`` for its AWS mode; this launcher keeps
its local/``address`` mode only, on any Ray >= 2.9. Found by Hydra's scan of the ``hydra_plugins``
namespace, from a checkout (repository root on ``sys.path``) or an installed wheel.
"""
