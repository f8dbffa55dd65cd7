"""The MLflow UI's address for this project's runs, and ``make ui``.

Why: MLflow 3 opens an experiment on its GenAI overview ("Traces 0") rather than on the runs
table. The choice lives in the browser's localStorage and defaults to GenAI (MLflow issue 24498),
so the experiment's ``mlflow.experimentKind`` tag is not enough in a fresh browser. The runs
table has its own address, ``#/experiments/<id>/runs``: every run ends with it and ``make ui``
prints it before it starts the server.
"""

from __future__ import annotations

import argparse
import os
import sys

HOST, PORT = "127.0.0.1", 5000
DEFAULT_STORE = "sqlite:///mlruns/mlflow.db"


def runs_table_url(experiment_id: str, host: str = HOST, port: int = PORT) -> str:
    return f"http://{host}:{port}/#/experiments/{experiment_id}/runs"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Start the MLflow UI and print the runs table's address.")
    parser.add_argument("--backend-store-uri", default=DEFAULT_STORE)
    parser.add_argument("--experiment", default="brainscan")
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, default=PORT)
    args = parser.parse_args(argv)

    from brainscan_exp.tracking.mlflow_run import ensure_experiment

    experiment_id = ensure_experiment(args.backend_store_uri, args.experiment)
    print(
        f"MLflow UI: open {runs_table_url(experiment_id, args.host, args.port)}\n"
        f"  (the runs table of experiment '{args.experiment}'; Ctrl-C stops the server)",
        flush=True,
    )
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", args.backend_store_uri]
    os.execv(sys.executable, [*command, "--host", args.host, "--port", str(args.port)])


if __name__ == "__main__":
    main()
