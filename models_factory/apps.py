from django.apps import AppConfig


class ModelsFactoryConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "models_factory"

    def ready(self) -> None:
        from datanets.jobs import JOB_TASKS

        JOB_TASKS["train"] = "models_factory.tasks.train_model"
