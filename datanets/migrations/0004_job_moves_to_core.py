# The Job model moved to the core app in state only; its table (datanets_job) and the foreign keys to it stay.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0001_initial"),
        ("datanets", "0003_upload_contribution"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name="job",
                    name="created_by",
                ),
                migrations.AlterField(
                    model_name="contribution",
                    name="job",
                    field=models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="contributions",
                        to="core.job",
                    ),
                ),
                migrations.AlterField(
                    model_name="snapshotexport",
                    name="job",
                    field=models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="core.job",
                    ),
                ),
            ],
            database_operations=[],
        ),
    ]
