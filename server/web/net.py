"""Who is on the other end: the client address behind nginx, never trusted from anyone else;
and whether a host the server is told to connect to is one of its private neighbours."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from functools import lru_cache

from aiohttp import web


@lru_cache(maxsize=1024)
def is_loopback(peer: str) -> bool:
    """True for a loopback address; remembered, as every playlist request asks (~4 us each)."""
    try:
        return ipaddress.ip_address(peer).is_loopback
    except ValueError:
        return False


def client_address(peer: str | None, forwarded_for: str) -> str:
    """The peer address; behind nginx (a loopback peer) the entry nginx appended to X-Forwarded-For.

    Only the right-most entry is trusted: a client can put anything in front of it.
    """
    peer = peer or "0.0.0.0"
    if forwarded_for and is_loopback(peer):
        last = forwarded_for.split(",")[-1].strip()
        if last:
            return last
    return peer


@lru_cache(maxsize=4096)
def address_key(address: str) -> str:
    """What per-address bans and limits key on: an IPv4 address, or an IPv6 address's /64.

    One IPv6 subscriber is given a whole /64 (at least), so a /128 per key would let anyone
    step around a ban or a limit by picking another address of their own.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def request_address(request: web.Request) -> str:
    """client_address for an aiohttp request."""
    return client_address(request.remote, request.headers.get("X-Forwarded-For", ""))


def browser_is_https(request: web.Request) -> bool:
    """The browser's scheme: nginx's X-Forwarded-Proto, trusted only from a loopback peer."""
    if is_loopback(request.remote or "") and "X-Forwarded-Proto" in request.headers:
        return request.headers["X-Forwarded-Proto"].lower() == "https"
    return request.secure


def browser_host(request: web.Request) -> str:
    """The host[:port] the browser asked for: nginx's Host drops the port, so behind it (a
    loopback peer) X-Forwarded-Host."""
    if is_loopback(request.remote or "") and "X-Forwarded-Host" in request.headers:
        return request.headers["X-Forwarded-Host"]
    return request.host


RESOLVE_TIMEOUT_S = 5.0


def _private(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return not ip.is_global or ip.is_multicast


async def is_private_host(host: str, port: int) -> bool:
    """True when `host` is, or resolves to, a private, loopback, link-local or multicast
    address: where the server itself connects (a relay, a webhook), an outsider must not aim
    it at the host's neighbours. A name that does not resolve now counts as not private (the
    connection then fails on its own)."""
    try:
        ipaddress.ip_address(host)
        addresses = [host]
    except ValueError:
        try:
            found = await asyncio.wait_for(
                asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM),
                RESOLVE_TIMEOUT_S,
            )
        except (OSError, TimeoutError):
            return False
        addresses = [str(info[4][0]) for info in found]
    return any(_private(a) for a in addresses)
