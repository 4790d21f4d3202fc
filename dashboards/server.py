"""Serving the dashboard: a socket bound to loopback unless another address is asked for, and
uvicorn running the app on it. Light to import (the CLI reads its defaults, the report's too); the
app loads on serve."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

from storage import Store

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_REFRESH_S = 5.0  # seconds between a study page's checks for new evaluations
DEFAULT_MAX_PLANS = 500  # plan views a static report embeds before it keeps to the fronts' plans


class DashboardError(Exception):
    """A dashboard problem the user can fix (one line naming it and the fix)."""


def is_loopback(host: str) -> bool:
    """Whether `host` only reaches this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, allow_remote: bool = False) -> socket.socket:
    """A listening socket on (host, port); port 0 picks a free one.

    The dashboard has no log-in, so anything but a loopback address is refused unless
    `allow_remote` says the network may see the store."""
    if not is_loopback(host) and not allow_remote:
        raise DashboardError(f"refusing to serve on {host}: the dashboard has no log-in and shows the "
                             "whole store; add --allow-remote to serve it to the network")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise DashboardError(f"cannot resolve host '{host}' ({err.strerror}): give an IP address "
                             f"such as {DEFAULT_HOST}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as err:
        sock.close()
        raise DashboardError(f"cannot listen on {host}:{port} ({err.strerror}): stop what uses it or "
                             "pick another --port") from None
    return sock


def serve(store: Store, sock: socket.socket, *, refresh_s: float = DEFAULT_REFRESH_S,
          on_ready: Callable[[str], None] | None = None, allow_remote: bool = False) -> None:
    """Serve the dashboard on `sock` until interrupted (Ctrl-C); the store is closed at the end."""
    import uvicorn

    from dashboards.app import create_app

    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    app = create_app(store, refresh_s=refresh_s, allow_remote=allow_remote)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    if on_ready is not None:
        on_ready(f"http://{shown}:{port}/")
    server.run(sockets=[sock])
