"""The session's local Ray cluster, and a driver on it for the tests."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.backing import RAY_ENV, RayCluster, start_ray


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    cluster = start_ray()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def ray_driver(ray_cluster: RayCluster) -> Iterator[Any]:
    """This test process joined to the cluster (to find and kill replicas), as `ray`."""
    os.environ.update(RAY_ENV)
    import ray

    ray.init(
        address=ray_cluster.address,
        namespace="easel-tests",
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    yield ray
    ray.shutdown()
