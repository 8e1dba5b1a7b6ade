# The Job model moved to the core app in state only; its table (datanets_job) and the foreign keys to it stay.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0001_initial"),
        ("models_factory", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="trainingrun",
                    name="job",
                    field=models.OneToOneField(
                        on_delete=django.db.models.deletion.PROTECT, related_name="training_run", to="core.job"
                    ),
                ),
            ],
            database_operations=[],
        ),
    ]
