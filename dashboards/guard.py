"""The dashboard's outer guard (an ASGI middleware): the Host header and the size of responses.

The dashboard has no log-in, so a page on loopback must not answer a request whose `Host` names
another site: that is how DNS rebinding lets a web page read a local server. Unless the user
served it to the network (`--allow-remote`), only loopback names are accepted (localhost,
127.0.0.0/8, ::1, with any port); any other Host gets 421. A response body over
MAX_RESPONSE_BYTES is replaced by a one-line 507 error instead of being sent.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from dashboards.server import is_loopback

MAX_RESPONSE_BYTES = 64_000_000  # plotly.js (4.6 MB) and the largest study views fit well within

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def host_name(header: str) -> str:
    """The name part of a Host header: `[::1]:8765` -> `::1`, `localhost:80` -> `localhost`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def guard(app: App, *, allow_remote: bool = False) -> App:
    """`app` behind the Host check (unless `allow_remote`) and the response size limit."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        if not allow_remote and not is_loopback(host_name(host)):
            await _refuse(send, 421, f"Host '{host[:60]}' is not this dashboard's: open it as "
                                     "http://127.0.0.1:PORT/ (or serve it with --allow-remote)")
            return
        await app(scope, receive, _bounded(send))

    return guarded


def _bounded(send: Send) -> Send:
    """`send` that replaces a response declaring a body over MAX_RESPONSE_BYTES by a 507 line."""
    refused = False

    async def bounded(message: Message) -> None:
        nonlocal refused
        if refused:
            return
        if message["type"] == "http.response.start":
            length = dict(message.get("headers") or []).get(b"content-length")
            if length is not None and int(length) > MAX_RESPONSE_BYTES:
                refused = True
                await _refuse(send, 507, f"the response would be {int(length):,} bytes, over the "
                                         f"dashboard's limit of {MAX_RESPONSE_BYTES:,}")
                return
        await send(message)

    return bounded


async def _refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
