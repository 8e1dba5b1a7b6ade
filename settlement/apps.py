from django.apps import AppConfig


class SettlementConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "settlement"
    verbose_name = "Rewards and settlement"

    def ready(self) -> None:
        from core import jobs

        jobs.register("settle", "settlement.settle_epoch")
