from __future__ import annotations

from django import forms
from django.contrib.auth.forms import UserCreationForm

from accounts.models import User


class SignUpForm(UserCreationForm):
    email = forms.EmailField(required=False, help_text="Optional: for password resets.")

    class Meta:
        model = User
        fields = ("username", "email")

    def validate_password_for_user(self, user: User, password_field_name: str = "password2") -> None:
        # "This password is too common" is about the password a person chose, so it goes under that field, not
        # under its confirmation (Django's default).
        super().validate_password_for_user(user, password_field_name="password1")


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="A name to tell this token apart, for example 'laptop'.")


class WalletForm(forms.Form):
    nonce = forms.CharField(widget=forms.HiddenInput)
    signature = forms.CharField(
        max_length=200,
        help_text="The 0x… signature of the message above (personal_sign).",
        widget=forms.TextInput(attrs={"placeholder": "0x…", "autocomplete": "off"}),
    )
