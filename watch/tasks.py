from __future__ import annotations

from celery import shared_task

from watch import webhooks


@shared_task(name="watch.deliver_webhook", ignore_result=True)
def deliver_webhook(delivery_id: int) -> None:
    webhooks.delivery_attempt(delivery_id=delivery_id)


@shared_task(name="watch.deliveries_due", ignore_result=True)
def deliveries_due() -> None:
    webhooks.deliveries_due_send()
