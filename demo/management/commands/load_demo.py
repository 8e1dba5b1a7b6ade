from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from demo.loader import load_demo


class Command(BaseCommand):
    help = (
        "Create the demo users, Datanets and reward epoch, and queue the demo model's first training run for the "
        "worker (idempotent: a second run changes nothing)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-train", action="store_true", help="Do not queue the demo model's training run (no model is created)."
        )

    def handle(self, *args: Any, no_train: bool = False, **options: Any) -> None:
        datanet = load_demo(stdout=self.stdout, train_model=not no_train)
        self.stdout.write(f"Demo Datanet: /d/{datanet.slug}/")
