"""TCP socket options for client and upstream connections.

Plain settings in (a tuple of seconds and a count), no config objects: the engine does
not know the config. Set once per connection, when it is made -- never per request.
"""

from __future__ import annotations

import socket

# (seconds idle before the first probe, seconds between probes, probes unanswered
# before the kernel drops the connection)
Keepalive = tuple[int, int, int]

_IDLE = getattr(socket, "TCP_KEEPIDLE", None) or getattr(socket, "TCP_KEEPALIVE", None)  # macOS: TCP_KEEPALIVE
_INTERVAL = getattr(socket, "TCP_KEEPINTVL", None)
_COUNT = getattr(socket, "TCP_KEEPCNT", None)


def set_keepalive(sock, keepalive: Keepalive) -> None:
    """Turn on TCP keepalive probes on ``sock`` with ``keepalive``'s timing.

    A socket that refuses an option (closed meanwhile) is left as it is: the connection
    is served either way."""
    idle, interval, count = keepalive
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if _IDLE is not None:
            sock.setsockopt(socket.IPPROTO_TCP, _IDLE, idle)
        if _INTERVAL is not None:
            sock.setsockopt(socket.IPPROTO_TCP, _INTERVAL, interval)
        if _COUNT is not None:
            sock.setsockopt(socket.IPPROTO_TCP, _COUNT, count)
    except OSError:
        pass
