from django.apps import AppConfig


class AttributionConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "attribution"

    def ready(self) -> None:
        from attribution.indexes import index_build_request
        from attribution.receipts import receipt_attach
        from attribution.selectors import index_job_readable, valuation_job_readable
        from attribution.views import version_panel
        from core import jobs
        from models_factory import hooks

        jobs.register("attribution_index", "attribution.build_index")
        jobs.register("valuation", "attribution.value_epoch")
        jobs.register_reader("attribution_index", index_job_readable)
        jobs.register_reader("valuation", valuation_job_readable)
        # The Model Factory sits to our left and never imports us: it calls what we subscribe here.
        hooks.on_version_registered(index_build_request)
        hooks.on_inference(receipt_attach)
        hooks.on_version_page(version_panel)

        from attribution.appeals import register_flag_kind

        register_flag_kind()
