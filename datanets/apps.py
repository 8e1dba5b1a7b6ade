from django.apps import AppConfig


class DatanetsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "datanets"

    def ready(self) -> None:
        from core import jobs

        jobs.register("ingest", "datanets.ingest_contribution")
        jobs.register("export", "datanets.export_snapshot")
