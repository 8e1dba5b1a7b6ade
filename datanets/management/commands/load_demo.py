from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from datanets.demo import load_demo


class Command(BaseCommand):
    help = "Create the demo users and the demo Datanet (idempotent: a second run changes nothing)."

    def handle(self, *args: Any, **options: Any) -> None:
        datanet = load_demo(stdout=self.stdout)
        self.stdout.write(f"Demo Datanet: /d/{datanet.slug}/")
