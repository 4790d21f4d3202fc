"""Ray for a search: join a cluster or start a local one, refuse tasks it could never place, and
one line for a task's error."""

from __future__ import annotations

import logging
import os
from typing import Any

from search.errors import SearchError


def start_ray(address: str | None) -> bool:
    """Join the cluster at `address`, or start a local Ray; False if one was running."""
    import ray

    if ray.is_initialized():
        return False
    logging.getLogger("ray").setLevel(logging.ERROR)  # start-up notices would break the progress line
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    try:
        if address:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False,
                     logging_level=logging.ERROR, log_to_driver=False)
    except Exception as err:  # noqa: BLE001 - one line for the user, whatever Ray raises
        where = address or "a local Ray"
        if _is_auth_refusal(err):
            raise SearchError(f"the Ray cluster at {where} refused this client ({last_line(err)}): it "
                              "uses token authentication; set RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) "
                              "to its token ('ray get-auth-token' on the head node), or leave "
                              "--address out") from None
        if not isinstance(err, (ConnectionError, RuntimeError, ValueError)):
            raise
        raise SearchError(f"could not start or join Ray at {where} ({last_line(err)}): check the "
                          "address (ray status on the head node), or leave --address out") from None
    return True


def _is_auth_refusal(err: BaseException) -> bool:
    import ray.exceptions

    kind = getattr(ray.exceptions, "AuthenticationError", None)
    return (kind is not None and isinstance(err, kind)) or "authentication" in str(err).lower()


def check_resources(device: str, cpus: float, gpus: float) -> None:
    """A task asking for more than the cluster has would wait forever: say so instead."""
    import ray

    total = ray.cluster_resources()
    have_cpus, have_gpus = total.get("CPU", 0), total.get("GPU", 0)
    if gpus > have_gpus:
        raise SearchError(f"--device {device} asks for {gpus:g} GPU per task but the Ray "
                          f"cluster has {have_gpus:g}: use --device cpu, or --address a cluster "
                          "with GPUs")
    if cpus > have_cpus:
        raise SearchError(f"each task asks for {cpus:g} CPUs (--threads) but the Ray cluster has "
                          f"{have_cpus:g}: lower --threads")


def ray_get(ref: Any) -> Any:
    import ray

    return ray.get(ref)


def last_line(err: BaseException) -> str:
    """The last non-empty line of an error (a Ray task's error ends with the worker's own)."""
    text = str(err).strip().splitlines()
    lines = [line for line in text if line.strip()]
    return lines[-1] if lines else type(err).__name__
