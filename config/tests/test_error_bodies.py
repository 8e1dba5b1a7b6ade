"""Every error the API gives is `{"detail": <sentence>, "code": <code>}`: walked over every operation in the schema,
with the errors DRF and Django make themselves (401 on a bad token, 404 on a missing object or page, 405, a
malformed or unsupported body), not only the ones our services raise."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

from accounts.services import token_create
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

METHODS = ["get", "post", "put", "patch", "delete"]
MISSING = {"slug": "no-such-thing", "address": "0x" + "ab" * 20}


def operations() -> dict[str, dict[str, Any]]:
    return SchemaGenerator().get_schema(request=None, public=True)["paths"]


def concrete(path: str) -> str:
    """The path with every parameter set to an object that does not exist."""
    return re.sub(r"\{(\w+)\}", lambda m: MISSING.get(m.group(1), "987654321"), path)


def assert_error_body(response: Any, what: str) -> list[str]:
    if response.status_code < 400:
        return []
    try:
        body = response.json()
    except ValueError:
        return [f"{what}: {response.status_code} is not JSON: {response.content[:120]!r}"]
    problems = []
    if not isinstance(body, dict) or not isinstance(body.get("detail"), str) or not body["detail"].strip():
        problems.append(f"{what}: {response.status_code} has no detail sentence: {body!r}"[:300])
    elif not isinstance(body.get("code"), str) or not body["code"]:
        problems.append(f"{what}: {response.status_code} has no code: {body!r}"[:300])
    return problems


def test_every_error_body_has_a_detail_and_a_code() -> None:
    user = UserFactory()
    _, raw = token_create(user=user, name="walker")
    signed_in = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    bad_token = {"HTTP_AUTHORIZATION": "Bearer dn_not_a_token"}
    client = Client()
    problems: list[str] = []
    statuses: set[int] = set()
    paths = operations()
    for path, ops in paths.items():
        url = concrete(path)
        for method in METHODS:
            call = getattr(client, method)
            if method not in ops:
                response = call(url, **signed_in)
                statuses.add(response.status_code)
                problems += assert_error_body(response, f"{method.upper()} {path} (not offered)")
                continue
            attempts = [
                ("bad token", call(url, **bad_token)),
                ("anonymous", call(url)),
                ("missing object", call(url, **signed_in)),
            ]
            if method == "get":
                attempts.append(("page past the end", call(url, {"page": 9999}, **signed_in)))
                attempts.append(("page not a number", call(url, {"page": "abc"}, **signed_in)))
            else:
                attempts.append(
                    ("malformed JSON", call(url, "{not json", content_type="application/json", **signed_in))
                )
                attempts.append(("unsupported type", call(url, "x", content_type="text/csv", **signed_in)))
            for what, response in attempts:
                statuses.add(response.status_code)
                problems += assert_error_body(response, f"{method.upper()} {path} ({what})")
    for url in ("/api/no-such-endpoint/", "/api/datanets/no-such-thing/no-such-action/"):
        response = client.get(url, **signed_in)
        statuses.add(response.status_code)
        problems += assert_error_body(response, f"GET {url}")
    assert not problems, "\n".join(problems)
    # The walk met every kind of error it is about.
    assert {400, 401, 403, 404, 405, 415} <= statuses, sorted(statuses)


def test_a_pagination_error_is_a_404_with_a_code() -> None:
    response = Client().get("/api/datanets/", {"page": 9999})
    assert response.status_code == 404
    assert response.json()["code"] == "not_found" and "There is no page 9999" in response.json()["detail"]
