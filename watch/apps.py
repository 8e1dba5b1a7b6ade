from django.apps import AppConfig


class WatchConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "watch"
    verbose_name = "Webhooks and explorer"

    def ready(self) -> None:
        from core import events
        from watch import webhooks

        events.on_event(webhooks.event_fanout)
