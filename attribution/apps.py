from django.apps import AppConfig


class AttributionConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "attribution"

    def ready(self) -> None:
        from attribution import services  # noqa: F401  (registers the attribution job kinds)
