"""The client's address: the connection's peer, or behind a trusted reverse proxy the address
that proxy reports. A header is believed only from the configured proxies: anyone else could
write any address into it."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from aiohttp import web

from webapp.keys import CONTEXT

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address


def _parse(value: str) -> Address | None:
    value = value.strip().strip("[]")
    try:
        return ip_address(value)
    except ValueError:
        return None


def _trusted(address: Address, proxies: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def client_address(request: web.Request) -> Address | None:
    ctx = request.app[CONTEXT]
    peer = _parse(request.remote or "")
    if peer is None or ctx.trusted_proxy_header is None or not _trusted(peer, ctx.trusted_proxies):
        return peer
    # X-Forwarded-For: client, proxy1, proxy2 — the right-most address no trusted proxy
    # wrote is the client.
    hops = [h for h in request.headers.getall(ctx.trusted_proxy_header, []) for h in h.split(",")]
    for hop in reversed(hops):
        address = _parse(hop)
        if address is None:
            return None
        if not _trusted(address, ctx.trusted_proxies):
            return address
    return peer


def address_in(address: Address | None, networks: Sequence[Network]) -> bool:
    return address is not None and _trusted(address, networks)
