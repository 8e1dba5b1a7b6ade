from django.apps import AppConfig


class ModelsFactoryConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "models_factory"

    def ready(self) -> None:
        from core import jobs
        from models_factory.selectors import train_job_readable

        jobs.register("train", "models_factory.tasks.train_model")
        jobs.register_reader("train", train_job_readable)
