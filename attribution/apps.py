from django.apps import AppConfig


class AttributionConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "attribution"

    def ready(self) -> None:
        from core import jobs

        jobs.register("attribution_index", "attribution.build_index")
        jobs.register("valuation", "attribution.value_epoch")
