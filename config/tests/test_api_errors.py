"""Inputs that used to end in a 500: each now gets a 4xx with a sentence and a code."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> APIClient:
    client = APIClient()
    client.force_authenticate(UserFactory())
    return client


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("post", "/api/models/abc/infer/"),
        ("post", "/api/records/abc/votes/"),
        ("get", "/api/records/12345678901234567890/credit/"),
        ("get", "/api/records/12345678901234567890/"),
        ("get", "/api/models/99999999999999999999/"),
        ("get", "/api/rewards/epochs/99999999999999999999/"),
    ],
)
def test_ids_that_are_not_numbers_or_too_long_are_404s(api: APIClient, method: str, url: str) -> None:
    response = getattr(api, method)(url, {}, format="json")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found" and response.json()["detail"]


def test_an_oversized_json_body_is_a_413_that_names_the_upload_api(api: APIClient, settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = json.dumps({"title": "x" * 5000, "slug": "big", "domain": "x"})
    response = api.post("/api/datanets/", body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["code"] == "too_large" and "resumable upload API" in response.json()["detail"]


def test_a_seed_beyond_32_bits_is_refused_before_the_model_runs(api: APIClient) -> None:
    # The body is checked before the version is looked up, so no deployed model is needed to see the refusal.
    response = api.post("/api/models/1/infer/", {"text": "hi", "seed": 2**70}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid" and "seed" in response.json()["detail"]


def test_drf_errors_carry_a_code(api: APIClient) -> None:
    assert APIClient().get("/api/me/").json()["code"] in {"not_authenticated", "authentication_failed"}
    malformed = api.post("/api/datanets/", "{not json", content_type="application/json")
    assert malformed.status_code == 400 and malformed.json()["code"] == "parse_error"
    wrong_method = api.delete("/api/me/")
    assert wrong_method.status_code == 405 and wrong_method.json()["code"] == "method_not_allowed"
