from django.apps import AppConfig


class DatanetsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "datanets"
