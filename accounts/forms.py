from __future__ import annotations

from django import forms
from django.contrib.auth.forms import UserCreationForm

from accounts.models import User
from accounts.scopes import SCOPES


class SignUpForm(UserCreationForm):
    email = forms.EmailField(required=False, help_text="Optional: for password resets.")

    class Meta:
        model = User
        fields = ("username", "email")

    def validate_password_for_user(self, user: User, password_field_name: str = "password2") -> None:
        # "This password is too common" is about the password a person chose, so it goes under that field, not
        # under its confirmation (Django's default).
        super().validate_password_for_user(user, password_field_name="password1")


EXPIRY_CHOICES = [("30", "30 days"), ("90", "90 days"), ("365", "1 year"), ("never", "never")]


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="A name to tell this token apart, for example 'laptop'.")
    scopes = forms.MultipleChoiceField(
        choices=[(key, f"{key}: {text}") for key, text in SCOPES.items()],
        initial=["read"],
        widget=forms.CheckboxSelectMultiple,
        help_text="Give a token only what it needs: a stolen token can do only this.",
    )
    expires = forms.ChoiceField(choices=EXPIRY_CHOICES, initial="90")
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        help_text="Your current password, to confirm.",
    )

    def expires_in_days(self) -> int | None:
        value = self.cleaned_data["expires"]
        return None if value == "never" else int(value)


class WalletForm(forms.Form):
    nonce = forms.CharField(widget=forms.HiddenInput)
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        help_text="Your current password, to confirm where your rewards go.",
    )
    signature = forms.CharField(
        max_length=200,
        help_text="The 0x… signature of the message above (personal_sign).",
        widget=forms.TextInput(attrs={"placeholder": "0x…", "autocomplete": "off"}),
    )
