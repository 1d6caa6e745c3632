"""`easel serve --ray`: join (or start) a Ray cluster, run the Serve application, remove it on exit."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable

from ..errors import ConfigError
from ..settings import Settings
from ..storage.signing import KEY_FILE, load_secret
from .application import application, forwarded_env
from .checks import alive_nodes, check_shared_state


def serve_on_ray(settings: Settings, announce: Callable[[str], None]) -> None:
    """Deploy the application and block until SIGTERM or SIGINT; then delete it (and stop the
    local cluster, when this command started one)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    from ray import serve

    if settings.url_signing_key is None:  # every replica, on any node, signs as this one does
        secret = load_secret(settings.data_dir / KEY_FILE).hex()
        settings = settings.model_copy(update={"url_signing_key": secret})
    address = settings.ray.address
    started_here = address is None
    try:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
                 configure_logging=False, namespace="easel")  # fmt: skip
    except (ConnectionError, RuntimeError) as exc:
        raise ConfigError(
            f"cannot join the Ray cluster at {address}: {exc}. Check --ray-address (or ray.address)."
        ) from None
    try:
        nodes = alive_nodes()
        check_shared_state(settings, nodes)
        serve.start(http_options={"host": settings.host, "port": settings.port})
        _check_port(settings)
        announce(f"deploying the Serve application {settings.ray.app_name!r} on {nodes} node(s)")
        name = settings.ray.app_name
        serve.run(application(settings, forwarded_env()), name=name, route_prefix="/", blocking=False)
        try:
            _wait_until_running(name)
        except ConfigError:
            serve.delete(name)
            raise
        announce(f"easel on Ray Serve is ready at {settings.base_url}/v1")
        _wait_for_signal()
        announce(f"removing the Serve application {settings.ray.app_name!r}")
        serve.delete(settings.ray.app_name)
    finally:
        if started_here:
            serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()


def _wait_until_running(name: str) -> None:
    """Until every replica of every deployment runs (models loaded); a deployment that fails (a
    model that cannot load) is a ConfigError with Serve's reason."""
    from ray import serve

    while True:
        app = serve.status().applications[name]
        if app.status == "DEPLOY_FAILED":
            failed = [f"{d}: {state.message}" for d, state in app.deployments.items() if state.message]
            raise ConfigError(
                "the Serve application failed to deploy:\n  " + "\n  ".join(failed or [app.message])
            )
        if app.status == "RUNNING" and all(d.status == "HEALTHY" for d in app.deployments.values()):
            return
        time.sleep(0.2)


def _check_port(settings: Settings) -> None:
    """Serve answers on one port per cluster: one already running on another port is refused,
    not silently kept (`serve.start` only warns)."""
    from ray.serve.context import _get_global_client

    client = _get_global_client()
    port = client.http_config.port if client is not None else settings.port
    if port != settings.port:
        raise ConfigError(
            f"Serve on this Ray cluster already answers on port {port}, not {settings.port}: pass "
            f"--port {port}, or shut Serve down there first (`serve shutdown`)."
        )


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
