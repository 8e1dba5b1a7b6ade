from __future__ import annotations

from typing import Any

from django import forms

from core.events import EVENT_TYPES
from datanets.models import Datanet


class EndpointForm(forms.Form):
    url = forms.CharField(label="URL", max_length=500, help_text="Where we POST each event (https://...).")
    description = forms.CharField(max_length=200, required=False)
    datanet = forms.ChoiceField(
        label="Events of", required=False, help_text="A Datanet you own hears all of its events; else your own."
    )
    event_types = forms.MultipleChoiceField(
        label="Event types",
        choices=[(t, f"{t}: {d}") for t, d in EVENT_TYPES.items()],
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args: Any, owned: list[Datanet], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["datanet"].choices = [("", "My own events (and public ones)")] + [
            (d.slug, f"Datanet: {d.title}") for d in owned
        ]
