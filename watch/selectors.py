"""Reads for webhooks: an endpoint and its deliveries answer to the endpoint's owner alone."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import User
from watch.models import WebhookDelivery, WebhookEndpoint


def endpoints_visible(user: User) -> QuerySet[WebhookEndpoint]:
    if not user.is_authenticated:
        return WebhookEndpoint.objects.none()
    return WebhookEndpoint.objects.filter(user=user).select_related("datanet")


def deliveries_visible(user: User) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(endpoint__in=endpoints_visible(user)).select_related("endpoint")
