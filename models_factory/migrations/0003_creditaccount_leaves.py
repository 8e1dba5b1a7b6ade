# CreditAccount moved to the accounts app in state only; its table (models_factory_creditaccount) stays.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_creditaccount"),
        ("models_factory", "0002_job_moves_to_core"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(
                    name="CreditAccount",
                ),
            ],
            database_operations=[],
        ),
    ]
