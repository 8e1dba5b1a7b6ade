from django.apps import AppConfig


class SettlementConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "settlement"
    verbose_name = "Rewards and settlement"

    def ready(self) -> None:
        # The worker's requeue of stale jobs must know the kind before anything imports settlement.services
        # (which sets the same entry and pulls in the chain libraries).
        from datanets.jobs import JOB_TASKS

        JOB_TASKS["settle"] = "settlement.settle_epoch"
