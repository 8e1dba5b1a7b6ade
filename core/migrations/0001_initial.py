# The Job table moves here from the datanets app in state only: the table keeps its name (datanets_job).
import uuid

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("datanets", "0003_upload_contribution"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Job",
                    fields=[
                        ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        ("kind", models.CharField(db_index=True, max_length=40)),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("queued", "Queued"),
                                    ("running", "Running"),
                                    ("succeeded", "Succeeded"),
                                    ("failed", "Failed"),
                                    ("cancelled", "Cancelled"),
                                ],
                                db_index=True,
                                default="queued",
                                max_length=12,
                            ),
                        ),
                        ("target_id", models.CharField(blank=True, max_length=64)),
                        ("progress_done", models.BigIntegerField(default=0)),
                        ("progress_total", models.BigIntegerField(default=0)),
                        ("progress_unit", models.CharField(default="items", max_length=20)),
                        ("message", models.CharField(blank=True, max_length=500)),
                        ("error", models.TextField(blank=True)),
                        ("result", models.JSONField(blank=True, default=dict)),
                        ("attempts", models.PositiveIntegerField(default=0)),
                        ("cancel_requested", models.BooleanField(default=False)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("started_at", models.DateTimeField(blank=True, null=True)),
                        ("heartbeat_at", models.DateTimeField(blank=True, null=True)),
                        ("finished_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "created_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="jobs",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={"db_table": "datanets_job", "ordering": ["-created_at"]},
                ),
            ],
            database_operations=[],
        ),
    ]
