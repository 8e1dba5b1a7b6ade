"""The login form, with a lockout: past the limit of failures even the right password is refused for a while."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm

from accounts import limits


class LockoutAuthenticationForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "locked": (
            "Too many failed sign-ins for this account or from your network. Wait %(minutes)d minutes and try "
            "again; if you forgot your password, ask an admin to reset it."
        ),
    }

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username") or ""
        ip = limits.client_ip(self.request) if self.request is not None else "unknown"
        lock = limits.login_locked(username=username, ip=ip)
        if lock.locked:
            raise forms.ValidationError(self.error_messages["locked"], code="locked", params={"minutes": lock.minutes})
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            if username:
                limits.login_failed(username=username, ip=ip)
            raise
        limits.login_succeeded(username=username)
        return cleaned
