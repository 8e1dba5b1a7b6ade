from django.apps import AppConfig


class SettlementConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "settlement"
    verbose_name = "Rewards and settlement"

    def ready(self) -> None:
        from core import jobs
        from settlement.chain.config import settings_check

        settings_check()  # a malformed key or address fails at start, not at the first settlement
        jobs.register("settle", "settlement.settle_epoch")

        from accounts import hooks
        from settlement.selectors import wallet_paid_to_another

        hooks.on_wallet_link(wallet_paid_to_another)

        from settlement.appeals import register_penalty_kind

        register_penalty_kind()
