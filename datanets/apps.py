from django.apps import AppConfig


class DatanetsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "datanets"

    def ready(self) -> None:
        from core import jobs
        from datanets.services.ingestion import contribution_abandoned

        jobs.register("ingest", "datanets.ingest_contribution")
        jobs.register_abandoned("ingest", contribution_abandoned)
        jobs.register("export", "datanets.export_snapshot")

        from datanets.services.appeals import register_rejection_kind

        register_rejection_kind()
        from datanets.selectors import export_job_readable, ingest_job_readable

        jobs.register_reader("ingest", ingest_job_readable)
        jobs.register_reader("export", export_job_readable)
