"""Sign-up (issue 15): a password that is too common is reported under the password, not its confirmation."""

from __future__ import annotations

import pytest

from accounts.forms import SignUpForm

pytestmark = pytest.mark.django_db


def test_a_too_common_password_is_reported_under_the_password_field() -> None:
    form = SignUpForm({"username": "newcomer", "password1": "password123", "password2": "password123"})
    assert not form.is_valid()
    assert any("too common" in e for e in form.errors["password1"]), form.errors
    assert "password2" not in form.errors


def test_a_mismatch_is_still_reported_under_the_confirmation() -> None:
    form = SignUpForm({"username": "newcomer", "password1": "a-long-unusual-9", "password2": "a-long-unusual-8"})
    assert not form.is_valid() and "password2" in form.errors and "password1" not in form.errors
