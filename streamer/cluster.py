"""`streamer eval --cluster`: an evaluation's files spread over the workers of a Ray cluster.

Ray (https://docs.ray.io) is an optional extra: `pip install 'streamer[cluster]'`. The driver
(this process) connects, puts the loaded model into the cluster's object store once, and
submits the files in pieces (`eval_runner.chunks`, a rolling batch each); every worker process
builds its `Runner` from the stored model once and keeps it for the pieces it takes. The
results come back as the same `ReplayResult`s a local run makes, so the report, the CSV and
the per-file rows are the same.

A piece whose worker died (the process killed, the node lost) is submitted again, up to
MAX_ATTEMPTS times in all, and its files are listed in the report's `cluster.retried_files`;
only a piece's completed result is kept, so no file is scored twice or lost. An error in the
work itself (an unreadable file) is not retried: it ends the run with its own message, as it
would locally.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from streamer.eval_runner import Runner, RunSpec, Task, chunks
from streamer.replay import LoadedModel, ReplayError
from streamer.results import ReplayResult

MAX_ATTEMPTS = 3
# How long the head's address may take to accept a connection before it is called dead.
CONNECT_TIMEOUT_S = 5.0
# A Ray Client server that fails to start the session's server process is asked again.
CLIENT_INIT_ATTEMPTS = 3
CLIENT_INIT_RETRY_S = 1.0
INSTALL_HINT = "pip install 'streamer[cluster]'"


class ClusterError(ReplayError):
    """The cluster cannot be used (no Ray, no head at the address, workers lost for good)."""


def check_cluster_available() -> None:
    """Raise ClusterError unless Ray can be imported, saying what to install."""
    try:
        import ray  # noqa: F401
    except ModuleNotFoundError:
        raise ClusterError(f"--cluster needs Ray, which is not installed: {INSTALL_HINT}") from None


def _host_port(address: str) -> tuple[str, int] | None:
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def _check_reachable(address: str) -> None:
    """A head that does not accept a TCP connection within CONNECT_TIMEOUT_S is a one-line
    error now, rather than Ray's own minute of retries."""
    target = _host_port(address)
    if target is None:
        raise ClusterError(f"--cluster {address!r}: expected 'auto', 'ray://HOST:PORT' or 'HOST:PORT'")
    try:
        with socket.create_connection(target, timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as error:
        raise ClusterError(f"cannot reach the Ray cluster at {address}: "
                           f"{error.strerror or error}") from None


def connect(address: str) -> dict[str, Any]:
    """ray.init for `address`; returns what the report says of the cluster."""
    import logging

    import ray

    check_cluster_available()
    if address != "auto":
        _check_reachable(address)
    # A Ray Client head starts a server process for each client; that start can fail on a busy
    # head (the client then reads "Initialization failure from server"), and a new connection
    # gets a new server. Other failures are not retried.
    attempts = CLIENT_INIT_ATTEMPTS if address.startswith("ray://") else 1
    for attempt in range(1, attempts + 1):
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False,
                     configure_logging=True)
            break
        except (ConnectionError, RuntimeError, ValueError) as error:
            if isinstance(error, ConnectionAbortedError) and attempt < attempts:
                ray.shutdown()
                time.sleep(CLIENT_INIT_RETRY_S)
                continue
            tried = f" ({attempt} attempts)" if attempt > 1 else ""
            raise ClusterError(f"cannot join the Ray cluster at {address}{tried}: "
                               f"{str(error).splitlines()[0]}") from None
    resources = ray.cluster_resources()
    return {"address": address, "nodes": len([n for n in ray.nodes() if n.get("Alive")]),
            "workers": int(resources.get("CPU", 0)), "pieces": 0, "retried_files": []}


# --- the worker side ---------------------------------------------------------------------------

_runners: dict[str, Runner] = {}


def evaluate_chunk(run_key: str, loaded: LoadedModel, spec: RunSpec, chunk: list[Task]
                   ) -> list[ReplayResult]:
    """One piece of files on a cluster worker; the worker's Runner is built once per run."""
    runner = _runners.get(run_key)
    if runner is None:
        for old in _runners.values():
            old.close()
        _runners.clear()
        runner = _runners[run_key] = Runner(loaded, spec)
    return list(runner.run_many(chunk))


# --- the driver side ---------------------------------------------------------------------------

def run_on_cluster(address: str, loaded: LoadedModel, spec: RunSpec, tasks: list[Task],
                   finished: Callable[[ReplayResult], None]) -> dict[str, Any]:
    """Evaluate `tasks` on the Ray cluster at `address`, calling `finished` per file as pieces
    complete. Returns the report's `cluster` entry."""
    import ray
    from ray import exceptions as ray_errors

    lost_worker = (ray_errors.WorkerCrashedError, ray_errors.NodeDiedError, ray_errors.ObjectLostError,
                   ray_errors.OwnerDiedError, ray_errors.LocalRayletDiedError)
    info = connect(address)
    try:
        remote = ray.remote(max_retries=0, num_cpus=1)(evaluate_chunk)
        run_key = uuid.uuid4().hex
        model_ref = ray.put(loaded)  # once: every worker reads it from the object store
        pieces = chunks(tasks, max(info["workers"], 1), spec.batch)
        info["pieces"] = len(pieces)
        pending: dict[Any, tuple[list[Task], int]] = {
            remote.remote(run_key, model_ref, spec, piece): (piece, 1) for piece in pieces}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                ref = ready[0]
                piece, attempt = pending.pop(ref)
                try:
                    results = ray.get(ref)
                except lost_worker as error:
                    names = [noisy.name for noisy, _, _ in piece]
                    if attempt >= MAX_ATTEMPTS:
                        raise ClusterError(f"the cluster lost the worker of {', '.join(names)} "
                                           f"{attempt} times: {type(error).__name__}") from None
                    info["retried_files"] += names
                    pending[remote.remote(run_key, model_ref, spec, piece)] = (piece, attempt + 1)
                    continue
                except ray_errors.RayTaskError as error:
                    cause = getattr(error, "cause", None)
                    if isinstance(cause, Exception):
                        raise cause from None
                    raise ClusterError(str(error).splitlines()[0]) from None
                for item in results:
                    finished(item)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
    finally:
        ray.shutdown()
    return info
