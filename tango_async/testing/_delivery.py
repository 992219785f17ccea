"""The sandbox's webhook deliveries: signing, delivery faults, and the workers that POST
each event to its subscription's URL with retries.

Signing (the header ``X-Signed-Payload``, over the raw body bytes):

- HMAC: base64(HMAC-SHA256(base64decode(hmacSharedSecretKey), body));
- X509: base64(RSASSA-PKCS1-v1_5 SHA-256 signature of body) with the sandbox's own RSA
  key, whose self-signed certificate is :attr:`Signer.certificate_pem`;
- NONE: no header.

``cryptography`` is imported only for X509 (HMAC is the standard library's).

Each subscription has one worker delivering its events one at a time, in the order they
were queued; an attempt answered with anything but a 2xx, or not answered (connection
error, timeout), is retried after each of ``retry_delays`` (real seconds) in turn, then
given up. Every attempt is recorded as a :class:`WebhookDelivery`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import aiohttp

from .._auth import HeaderValue
from ._wire import ENCODER

__all__ = [
    "WEBHOOK_FAULTS",
    "Deliverer",
    "Job",
    "Signer",
    "WebhookDelivery",
    "WebhookFaultPlan",
    "parse_certificate",
]

logger = logging.getLogger("tango_async")

SIGNATURE_HEADER = "X-Signed-Payload"
_MAX_ANSWER = 64 * 1024  # bytes of a listener's answer read (and dropped)

# name -> what the sandbox does to the delivery of the event it is drawn by
WEBHOOK_FAULTS: dict[str, str] = {
    "duplicate": "the event is delivered twice, one after the other (same eventId, same "
    "revision, same body)",
    "out-of-order": "the event is held back and delivered right after the subscription's "
    "next event (a later revision first), or at Sandbox.deliver_due() if none comes",
    "bad-signature": "X-Signed-Payload is a well-formed signature of other bytes (with "
    "NONE verification: a bogus header is added)",
    "tampered-body": "the body is changed after it was signed (a field added at its end); "
    "the header is the signature of the original body",
    "lost": "the event is never delivered; GET /webhooks/{id}/events still lists it and a "
    "replay delivers it",
}


class SubscriptionLike(Protocol):
    """What a delivery reads of its subscription when it is sent (its settings may have
    changed since the event was queued)."""

    webhook_id: str
    url: str
    headers: list[dict[str, str]]
    method: str  # HMAC, X509 or NONE
    hmac_key: str | None  # base64 text


@dataclass(slots=True)
class WebhookDelivery:
    """One attempt to deliver one event to one subscription.

    ``status`` is the listener's HTTP status, 0 when it did not answer (``error`` says
    why: a connection error or a timeout). ``headers`` are those sent, the subscription's
    custom ones included (their values render as ``<redacted>`` in a repr); ``body`` the
    exact bytes sent (:attr:`json` parses them). ``attempt`` counts from 1 for each copy
    of the event sent; ``fault`` is the webhook fault that shaped it, ``replay`` whether a
    replay sent it."""

    webhook_id: str
    url: str
    event_id: str
    revision: int
    event_type: str
    attempt: int
    body: bytes
    headers: dict[str, str]
    status: int
    error: str | None = None
    fault: str | None = None
    replay: bool = False
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def json(self) -> Any:
        """The body parsed (the event's envelope)."""
        return json.loads(self.body)

    @property
    def ok(self) -> bool:
        """The listener answered with a 2xx."""
        return 200 <= self.status < 300

    def __repr__(self) -> str:
        return (
            f"WebhookDelivery(webhook_id={self.webhook_id!r}, event_type={self.event_type!r}, "
            f"revision={self.revision}, attempt={self.attempt}, status={self.status}, "
            f"error={self.error!r}, fault={self.fault!r}, replay={self.replay})"
        )


@dataclass(slots=True)
class Job:
    """One event to deliver to one subscription."""

    webhook_id: str
    envelope: dict[str, Any]
    fault: str | None = None
    replay: bool = False


@dataclass
class _WebhookFault:
    name: str
    remaining: int
    event_type: str | None
    webhook_id: str | None


class WebhookFaultPlan:
    """Scripted webhook faults, used in the order they were added."""

    def __init__(self) -> None:
        self.scripted: list[_WebhookFault] = []

    def add(self, name: str, times: int, event_type: str | None, webhook_id: str | None) -> None:
        if name not in WEBHOOK_FAULTS:
            raise ValueError(f"unknown webhook fault {name!r}; one of: {', '.join(WEBHOOK_FAULTS)}")
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError("times must be an int of at least 1")
        self.scripted.append(_WebhookFault(name, times, event_type, webhook_id))

    def take(self, event_type: str, webhook_id: str) -> str | None:
        """The fault for this event's delivery to this subscription, consuming one use."""
        for fault in self.scripted:
            if fault.event_type not in (None, event_type):
                continue
            if fault.webhook_id not in (None, webhook_id):
                continue
            fault.remaining -= 1
            if fault.remaining <= 0:
                self.scripted.remove(fault)
            return fault.name
        return None

    def clear(self) -> None:
        self.scripted.clear()


def _b64decode(text: str) -> bytes:
    return base64.b64decode("".join(text.split()), validate=True)


def parse_certificate(text: str) -> bytes | None:
    """The DER bytes of a certificate given as PEM text, base64 of its PEM or base64 of
    its DER; None if it is none of them. With ``cryptography`` installed the certificate
    must also load."""
    data: bytes | None = None
    stripped = text.strip()
    if stripped.startswith("-----BEGIN"):
        pem = stripped.encode("ascii", "replace")
    else:
        try:
            raw = _b64decode(stripped)
        except (binascii.Error, ValueError):
            return None
        pem = raw if raw.lstrip().startswith(b"-----BEGIN") else b""
        data = None if pem else raw
    if pem:
        lines = pem.decode("ascii", "replace").splitlines()
        inside = [ln for ln in lines if ln.strip() and not ln.startswith("-----")]
        if "-----BEGIN CERTIFICATE-----" not in pem.decode("ascii", "replace"):
            return None
        try:
            data = _b64decode("".join(inside))
        except (binascii.Error, ValueError):
            return None
    if not data:
        return None
    try:
        from cryptography import x509
    except ImportError:  # checked as far as it can be without it
        return data
    try:
        x509.load_der_x509_certificate(data)
    except ValueError:
        return None
    return data


class Signer:
    """Signs delivery bodies: HMAC with the subscription's key, X509 with the sandbox's
    own RSA key (made on first use, with its self-signed certificate)."""

    def __init__(self) -> None:
        self._key: Any = None
        self._certificate_pem: str | None = None

    def _ensure(self) -> None:
        if self._key is not None:
            return
        try:
            from cryptography import x509
            from cryptography.hazmat.primitives import hashes, serialization
            from cryptography.hazmat.primitives.asymmetric import rsa
            from cryptography.x509.oid import NameOID
        except ImportError as exc:
            raise RuntimeError(
                "X509 webhook signing needs the cryptography package: pip install cryptography"
            ) from exc
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tango-async sandbox"),
                x509.NameAttribute(NameOID.COMMON_NAME, "Tango sandbox webhook signing"),
            ]
        )
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650))
            .sign(key, hashes.SHA256())
        )
        self._certificate_pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
        self._key = key

    @property
    def certificate_pem(self) -> str:
        """The PEM text of the certificate whose key signs X509 deliveries."""
        self._ensure()
        assert self._certificate_pem is not None
        return self._certificate_pem

    def sign_x509(self, body: bytes) -> str:
        """base64 of the RSASSA-PKCS1-v1_5 SHA-256 signature of ``body``."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        self._ensure()
        return base64.b64encode(self._key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()

    @staticmethod
    def sign_hmac(key_b64: str, body: bytes) -> str:
        """base64 of HMAC-SHA256 of ``body`` with the key whose base64 is ``key_b64``."""
        digest = hmac.new(_b64decode(key_b64), body, hashlib.sha256).digest()
        return base64.b64encode(digest).decode()

    def signature(self, sub: SubscriptionLike, body: bytes) -> str | None:
        """The ``X-Signed-Payload`` of ``body`` for ``sub`` (None: NONE, no header)."""
        if sub.method == "HMAC" and sub.hmac_key:
            return self.sign_hmac(sub.hmac_key, body)
        if sub.method == "X509":
            return self.sign_x509(body)
        return None


class Deliverer:
    """Delivers queued events, one worker per subscription, and records every attempt in
    ``records``. ``lookup`` gives a subscription by ID (None once deleted: its queued
    events are dropped). Needs a running event loop from the first :meth:`enqueue`."""

    def __init__(
        self,
        *,
        lookup: Callable[[str], SubscriptionLike | None],
        signer: Signer,
        records: list[WebhookDelivery],
        retry_delays: Iterable[float] = (1.0, 2.0, 4.0),
        timeout: float = 10.0,
    ) -> None:
        self._lookup = lookup
        self._signer = signer
        self.records = records
        self.retry_delays = tuple(retry_delays)
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._queues: dict[str, asyncio.Queue[Job]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._held: dict[str, Job] = {}  # out-of-order: waiting for the next event
        self._outstanding = 0
        self._idle: asyncio.Event | None = None

    def enqueue(self, job: Job) -> None:
        """Queue ``job`` behind its subscription's others (an out-of-order one waits for
        the next)."""
        held = self._held.pop(job.webhook_id, None)
        if held is not None:
            self._put(job)
            self._put(held)
        elif job.fault == "out-of-order":
            self._held[job.webhook_id] = job
        else:
            self._put(job)

    def release_held(self) -> None:
        """Queue the out-of-order events still waiting for a next one."""
        held, self._held = self._held, {}
        for job in held.values():
            self._put(job)

    def drop(self, webhook_id: str) -> None:
        """Forget what waits for a deleted subscription (its worker drops the rest)."""
        self._held.pop(webhook_id, None)

    def _idle_event(self) -> asyncio.Event:
        if self._idle is None:
            self._idle = asyncio.Event()
            if self._outstanding == 0:
                self._idle.set()
        return self._idle

    def _put(self, job: Job) -> None:
        self._outstanding += 1
        self._idle_event().clear()
        queue = self._queues.get(job.webhook_id)
        if queue is None:
            queue = self._queues[job.webhook_id] = asyncio.Queue()
            self._workers[job.webhook_id] = asyncio.get_running_loop().create_task(
                self._work(queue), name=f"tango-sandbox-webhook-{job.webhook_id}"
            )
        queue.put_nowait(job)

    async def idle(self) -> None:
        """Return once every queued event has been delivered or given up on."""
        await self._idle_event().wait()

    @property
    def busy(self) -> bool:
        """Events are queued or being delivered."""
        return self._outstanding > 0

    async def close(self) -> None:
        """Stop every worker (deliveries in flight are cut off) and close the session."""
        workers, self._workers = self._workers, {}
        for task in workers.values():
            task.cancel()
        for task in workers.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._queues.clear()
        self._held.clear()
        self._outstanding = 0
        if self._idle is not None:
            self._idle.set()
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def _work(self, queue: asyncio.Queue[Job]) -> None:
        while True:
            job = await queue.get()
            try:
                await self._deliver(job)
            except Exception:  # a bug must not stop the subscription's deliveries
                logger.exception("sandbox: webhook delivery failed unexpectedly")
            finally:
                self._outstanding -= 1
                if self._outstanding <= 0:
                    self._outstanding = 0
                    self._idle_event().set()

    async def _deliver(self, job: Job) -> None:
        sub = self._lookup(job.webhook_id)
        if sub is None or job.fault == "lost":
            return
        for _ in range(2 if job.fault == "duplicate" else 1):
            await self._send(sub, job)

    async def _send(self, sub: SubscriptionLike, job: Job) -> None:
        body = ENCODER.encode(job.envelope)
        signature = self._signer.signature(sub, body)
        if job.fault == "bad-signature":
            other = body + b" "
            signature = (
                self._signer.signature(sub, other)
                if signature is not None
                else base64.b64encode(hashlib.sha256(other).digest()).decode()
            )
        elif job.fault == "tampered-body":
            body = body[:-1] + b',"tampered":true}'
        headers: dict[str, str] = {h["name"]: HeaderValue(h["value"]) for h in sub.headers}
        headers["Content-Type"] = "application/json"
        if signature is not None:
            headers[SIGNATURE_HEADER] = signature
        env = job.envelope
        for attempt, delay in enumerate((0.0, *self.retry_delays), 1):
            if delay > 0:
                await asyncio.sleep(delay)  # real time: the sandbox clock may be frozen
            status, error = await self._post(sub.url, body, headers)
            self.records.append(
                WebhookDelivery(
                    webhook_id=sub.webhook_id,
                    url=sub.url,
                    event_id=env["eventId"],
                    revision=env["revision"],
                    event_type=env["eventType"],
                    attempt=attempt,
                    body=body,
                    headers=dict(headers),
                    status=status,
                    error=error,
                    fault=job.fault,
                    replay=job.replay,
                )
            )
            if 200 <= status < 300:
                return
            logger.debug(
                "sandbox: webhook %s: %s revision %d, attempt %d: %s",
                sub.webhook_id,
                env["eventType"],
                env["revision"],
                attempt,
                error or status,
            )
        logger.info(
            "sandbox: webhook %s: gave up delivering %s revision %d after %d attempts",
            sub.webhook_id,
            env["eventType"],
            env["revision"],
            1 + len(self.retry_delays),
        )

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str | None]:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(
                url,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as resp:
                await resp.content.read(_MAX_ANSWER)
                return resp.status, None
        except TimeoutError:
            return 0, "timeout"
        except (aiohttp.ClientError, OSError, ValueError) as e:
            return 0, type(e).__name__
