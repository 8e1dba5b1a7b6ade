# The Job model moved to the core app in state only; its table (datanets_job) and the foreign keys to it stay.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("attribution", "0002_job_moves_to_core"),
        ("datanets", "0004_job_moves_to_core"),
        ("models_factory", "0002_job_moves_to_core"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(
                    name="Job",
                ),
            ],
            database_operations=[],
        ),
    ]
