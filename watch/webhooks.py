"""Signed webhooks (Standard Webhooks: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature: v1,<base64
HMAC-SHA256 of "id.timestamp.body">``, secret ``whsec_<base64>``).

An event (``core.events``) fans out to the endpoints that may hear it, as one delivery row each; a Celery task on
the ``short`` queue sends it, and on a failure (a non-2xx answer, a timeout, a refused connection) sends it again
with exponential backoff, up to ``WEBHOOK_MAX_ATTEMPTS``. Every attempt is logged. An endpoint whose last
``WEBHOOK_DISABLE_AFTER`` attempts all failed is disabled, with the reason shown to its owner.

Addresses: an endpoint's host must resolve to public addresses only (no loopback, link-local, private or reserved
ranges), checked when it is registered and again before every attempt; redirects are not followed.
``WEBHOOK_ALLOW_PRIVATE_URLS`` lifts this for a local receiver (tests, a dev machine).
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import os
import socket
import time
import uuid
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from accounts.audit import audit_record
from accounts.models import User
from core.canonical import canonical_json
from core.errors import Conflict, Forbidden, UserError
from core.events import EVENT_TYPES, Event
from datanets import selectors as datanet_selectors
from datanets.models import Datanet
from watch.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

log = logging.getLogger(__name__)

State = WebhookDelivery.Status
USER_AGENT = "Datanets-Webhooks/1"


def max_attempts() -> int:
    return int(getattr(settings, "WEBHOOK_MAX_ATTEMPTS", 5))


def backoff_seconds(attempt: int) -> float:
    """Wait after failed attempt ``attempt`` (1-based): base, 2 x base, 4 x base, ..."""
    return float(getattr(settings, "WEBHOOK_BACKOFF_SECONDS", 10.0)) * 2 ** (attempt - 1)


def secret_new() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


def sign(secret: str, msg_id: str, timestamp: datetime, body: str) -> str:
    return Webhook(secret).sign(msg_id, timestamp, body)


# --- addresses ---------------------------------------------------------------------------------------------------


def _address_refused(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def url_refusal(url: str) -> str | None:
    """None when the platform may POST to ``url``, else a sentence saying why not."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "A webhook URL starts with https:// (or http://) and names a host."
    if parts.username or parts.password:
        return "Leave credentials out of the webhook URL; verify our signature instead."
    if getattr(settings, "WEBHOOK_ALLOW_PRIVATE_URLS", False):
        return None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)
    except (OSError, ValueError):
        return f"The host {parts.hostname!r} does not resolve; check the URL."
    refused = sorted({info[4][0] for info in infos if _address_refused(str(info[4][0]))})
    if refused:
        return (
            f"{parts.hostname} resolves to {', '.join(refused)}, a loopback, private or link-local address; "
            "webhooks go to public addresses only."
        )
    return None


# --- endpoints ---------------------------------------------------------------------------------------------------


def _clean_event_types(event_types: list[str]) -> list[str]:
    unknown = sorted(set(event_types) - set(EVENT_TYPES))
    if unknown:
        raise UserError(f"Unknown event type {', '.join(unknown)}: choose from {', '.join(EVENT_TYPES)}.")
    if not event_types:
        raise UserError("Choose at least one event type, for example record.resolved.")
    return [t for t in EVENT_TYPES if t in event_types]


def endpoint_create(
    *,
    actor: User,
    url: str,
    event_types: list[str],
    datanet: Datanet | None = None,
    description: str = "",
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it and its signing secret, which is shown this once."""
    if not actor.is_authenticated:
        raise Forbidden("Log in to register a webhook.")
    if datanet is not None and not datanet_selectors.is_owner(actor, datanet):
        raise Forbidden("Only the Datanet's owner can register webhooks for it; register one for your own events.")
    url = url.strip()
    refusal = url_refusal(url)
    if refusal:
        raise UserError(refusal)
    types = _clean_event_types(event_types)
    limit = int(getattr(settings, "WEBHOOK_ENDPOINTS_PER_USER", 20))
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=actor.pk).first()  # the per-user cap holds under parallel calls
        if WebhookEndpoint.objects.filter(user=actor).count() >= limit:
            raise Conflict(f"You have {limit} webhook endpoints already; delete one first.")
        secret = secret_new()
        endpoint = WebhookEndpoint.objects.create(
            user=actor, datanet=datanet, url=url, event_types=types, secret=secret, description=description[:200]
        )
        audit_record(
            actor=actor,
            action="webhook.create",
            target=endpoint,
            after={"url": url, "datanet": datanet.slug if datanet else None, "events": types},
        )
    return endpoint, secret


def _own(actor: User, endpoint: WebhookEndpoint) -> None:
    if endpoint.user_id != actor.pk:
        raise Forbidden("Only the endpoint's owner can change it.")


def endpoint_enable(*, actor: User, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """Turn a disabled endpoint back on (its failure count starts again)."""
    _own(actor, endpoint)
    refusal = url_refusal(endpoint.url)
    if refusal:
        raise UserError(refusal)
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        endpoint.is_active = True
        endpoint.consecutive_failures = 0
        endpoint.disabled_reason = ""
        endpoint.disabled_at = None
        endpoint.save(update_fields=["is_active", "consecutive_failures", "disabled_reason", "disabled_at"])
        audit_record(actor=actor, action="webhook.enable", target=endpoint)
    return endpoint


def endpoint_delete(*, actor: User, endpoint: WebhookEndpoint) -> None:
    _own(actor, endpoint)
    with transaction.atomic():
        audit_record(actor=actor, action="webhook.delete", target=endpoint, before={"url": endpoint.url})
        endpoint.delete()


# --- fan-out -----------------------------------------------------------------------------------------------------


def _may_hear(endpoint: WebhookEndpoint, event: Event, datanet: Datanet | None) -> bool:
    if event.type not in endpoint.event_types:
        return False
    if endpoint.datanet_id is not None:
        # A Datanet's endpoint hears its events only while its owner still owns it.
        return (
            endpoint.datanet_id == event.datanet_id
            and datanet is not None
            and endpoint.datanet.owner_id == (endpoint.user_id)
        )
    if datanet is not None and not datanet_selectors.can_view(endpoint.user, datanet):
        return False
    return event.public or endpoint.user_id in event.user_ids


def event_fanout(event: Event) -> list[WebhookDelivery]:
    """One delivery per endpoint that may hear ``event`` (``core.events`` subscriber), each sent by a task."""
    who = Q(datanet__isnull=True, user_id__in=event.user_ids)
    if event.datanet_id is not None:
        who |= Q(datanet_id=event.datanet_id)
    if event.public:
        who |= Q(datanet__isnull=True)
    candidates = list(WebhookEndpoint.objects.filter(who, is_active=True).select_related("user", "datanet"))
    if not candidates:  # the common case: one query per event
        return []
    datanet = Datanet.objects.filter(pk=event.datanet_id).first() if event.datanet_id is not None else None
    endpoints = [e for e in candidates if _may_hear(e, event, datanet)]
    if not endpoints:
        return []
    now = timezone.now()
    payload = {"type": event.type, "timestamp": now.isoformat(), "data": event.data}
    with transaction.atomic():
        deliveries = [
            WebhookDelivery.objects.create(
                endpoint=e, msg_id=f"msg_{uuid.uuid4().hex}", event_type=event.type, payload=payload, next_retry_at=now
            )
            for e in endpoints
        ]
        for d in deliveries:
            delivery_enqueue(d.pk)
    return deliveries


def delivery_enqueue(delivery_id: int, countdown: float = 0) -> None:
    from config.celery import app

    transaction.on_commit(
        lambda: app.send_task(
            "watch.deliver_webhook", args=[delivery_id], countdown=countdown, queue=settings.QUEUE_SHORT
        )
    )


# --- sending -----------------------------------------------------------------------------------------------------


def _claim(delivery_id: int, now: datetime) -> WebhookDelivery | None:
    """Take the attempt: a delivery that is due and not finished, its endpoint active. The lease (``next_retry_at``
    moved past the request's timeout) keeps a second worker off it; no lock is held during the request."""
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update()
            .select_related("endpoint")
            .filter(pk=delivery_id, status__in=[State.PENDING, State.RETRYING])
            .first()
        )
        if delivery is None or (delivery.next_retry_at and delivery.next_retry_at > now):
            return None
        if not delivery.endpoint.is_active:
            delivery.status = State.FAILED
            delivery.last_error = "Not sent: the endpoint is disabled."
            delivery.next_retry_at = None
            delivery.save(update_fields=["status", "last_error", "next_retry_at"])
            return None
        delivery.attempts += 1
        delivery.next_retry_at = now + timedelta(seconds=timeout_seconds() + 30)
        delivery.save(update_fields=["attempts", "next_retry_at"])
    return delivery


def timeout_seconds() -> float:
    return float(getattr(settings, "WEBHOOK_TIMEOUT_SECONDS", 5.0))


def _post(delivery: WebhookDelivery) -> tuple[int | None, str]:
    """(status code or None, error sentence or '') of one signed POST."""
    endpoint = delivery.endpoint
    refusal = url_refusal(endpoint.url)  # again now: what a host resolves to can change after registration
    if refusal:
        return None, refusal
    body = canonical_json(delivery.payload).decode()
    sent_at = timezone.now()
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": delivery.msg_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": sign(endpoint.secret, delivery.msg_id, sent_at, body),
    }
    try:
        with requests.post(
            endpoint.url,
            data=body.encode(),
            headers=headers,
            timeout=timeout_seconds(),
            allow_redirects=False,
            stream=True,
        ) as response:
            code = response.status_code
    except requests.Timeout:
        return None, f"No answer within {timeout_seconds():g} s."
    except requests.RequestException as exc:
        return None, f"Could not connect: {type(exc).__name__}."
    if 200 <= code < 300:
        return code, ""
    return code, f"Answered HTTP {code}; anything but 2xx counts as a failure."


def delivery_attempt(*, delivery_id: int, now: datetime | None = None) -> WebhookDelivery | None:
    """Send one attempt of a delivery if it is due; record it; schedule the next one or give up. Returns the
    delivery after the attempt, or None when nothing was due."""
    delivery = _claim(delivery_id, now or timezone.now())
    if delivery is None:
        return None
    started = time.monotonic()
    code, error = _post(delivery)
    duration_ms = int((time.monotonic() - started) * 1000)
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery, number=delivery.attempts, status_code=code, duration_ms=duration_ms, error=error[:500]
        )
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=delivery.endpoint_id)
        delivery.last_status_code = code
        delivery.last_duration_ms = duration_ms
        delivery.last_error = error[:500]
        if not error:
            delivery.status = State.SUCCEEDED
            delivery.delivered_at = timezone.now()
            delivery.next_retry_at = None
            endpoint.consecutive_failures = 0
        else:
            endpoint.consecutive_failures += 1
            if delivery.attempts >= max_attempts():
                delivery.status = State.FAILED
                delivery.next_retry_at = None
            else:
                wait = backoff_seconds(delivery.attempts)
                delivery.status = State.RETRYING
                delivery.next_retry_at = timezone.now() + timedelta(seconds=wait)
                delivery_enqueue(delivery.pk, countdown=wait)
            disable_after = int(getattr(settings, "WEBHOOK_DISABLE_AFTER", 15))
            if endpoint.is_active and endpoint.consecutive_failures >= disable_after:
                _disable(
                    endpoint,
                    f"Disabled after {endpoint.consecutive_failures} failed attempts in a row "
                    f"(the last: {error}) Fix the receiver, then enable it again.",
                )
        delivery.save()
        endpoint.save(update_fields=["consecutive_failures", "is_active", "disabled_reason", "disabled_at"])
    return delivery


def _disable(endpoint: WebhookEndpoint, reason: str) -> None:
    endpoint.is_active = False
    endpoint.disabled_reason = reason[:300]
    endpoint.disabled_at = timezone.now()
    audit_record(actor=None, action="webhook.disabled", target=endpoint, after={"reason": endpoint.disabled_reason})
    log.warning("webhook endpoint %s disabled: %s", endpoint.pk, reason)


def deliveries_due_send(*, now: datetime | None = None, limit: int = 500) -> int:
    """Send again the deliveries whose next attempt is due (a task lost with its worker). Beat runs it."""
    now = now or timezone.now()
    due = list(
        WebhookDelivery.objects.filter(status__in=[State.PENDING, State.RETRYING], next_retry_at__lte=now)
        .order_by("next_retry_at")
        .values_list("pk", flat=True)[:limit]
    )
    for pk in due:
        delivery_enqueue(pk)
    return len(due)
