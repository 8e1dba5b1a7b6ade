# CreditAccount moves here from models_factory in state only: the table keeps its name (models_factory_creditaccount).

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("models_factory", "0002_job_moves_to_core"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="CreditAccount",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID"),
                        ),
                        ("balance", models.BigIntegerField(default=0)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        (
                            "user",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="credit_account",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "models_factory_creditaccount",
                        "constraints": [
                            models.CheckConstraint(
                                condition=models.Q(("balance__gte", 0)), name="credit_balance_not_negative"
                            )
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
