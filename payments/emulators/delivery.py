"""How the emulators call the console back: an HTTP POST, only to this
machine (loopback) or to the host the triggering request came to, so an
emulator is never a way to send requests elsewhere."""
from __future__ import annotations

import ipaddress
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

log = logging.getLogger("aurora.payments.emulators")
TIMEOUT_SECONDS = 30
# No proxy: the target is this machine.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Delivery:
    url: str
    status: int  # 0: not delivered (refused target or connection error)
    body: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def deliverable(url: str, *, request_host: str) -> bool:
    """``url`` is http(s) on a loopback host or on ``request_host`` (host[:port])."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    return _loopback(parts.hostname) or parts.netloc.lower() == request_host.lower()


def deliver(url: str, *, body: bytes, headers: dict[str, str], request_host: str) -> Delivery:
    """POST ``body`` to ``url``; the answer, or status 0 with the reason."""
    if not deliverable(url, request_host=request_host):
        log.warning("emulator refused to deliver to %s", url)
        return Delivery(url=url, status=0, body=f"not delivered: {url} is not on this machine")
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - checked above
    try:
        with _opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            delivery = Delivery(url=url, status=response.status, body=response.read().decode(errors="replace"))
    except urllib.error.HTTPError as exc:
        delivery = Delivery(url=url, status=exc.code, body=exc.read().decode(errors="replace")[:500])
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        delivery = Delivery(url=url, status=0, body=f"not delivered: {exc}")
    log.info("emulator delivered to %s: %s %s", url, delivery.status, delivery.body[:80])
    return delivery
