from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from datanets import selectors
from datanets.models import Datanet


def datanet_roles(request: HttpRequest) -> dict[str, Any]:
    """The viewer's roles on the Datanet in the URL, for the tabs every Datanet page shows."""
    match = getattr(request, "resolver_match", None)
    slug = match.kwargs.get("slug") if match and match.namespace == "datanets" else None
    if not slug or not request.user.is_authenticated:
        return {}
    datanet = Datanet.objects.filter(slug=slug).first()
    if datanet is None:
        return {}
    return {
        "nav_is_curator": selectors.is_curator(request.user, datanet),
        "nav_is_owner": selectors.is_owner(request.user, datanet),
    }
