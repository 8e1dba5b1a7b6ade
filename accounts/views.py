from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts import limits, services
from accounts.forms import SignUpForm, TokenForm, WalletForm
from core.errors import UserError


def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("datanets:list")
    form = SignUpForm(request.POST or None)
    if request.method == "POST":
        ip = limits.client_ip(request)
        if limits.hit("signup", ip, window_s=3600) > settings.SIGNUPS_PER_HOUR_PER_IP:
            messages.error(
                request,
                "Too many sign-up attempts from your network in the last hour. Try again later, or sign in "
                "to the account you already have.",
            )
            return render(request, "accounts/signup.html", {"form": form}, status=429)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome, {user.username}. Pick a Datanet to contribute to, or create one.")
        return redirect("datanets:list")
    return render(request, "accounts/signup.html", {"form": form})


@login_required
def tokens(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST or None)
    # Shown once: the value travels through the session to the redirected page, so a refresh creates nothing.
    new_token = request.session.pop("new_api_token", None)
    if request.method == "POST" and form.is_valid():
        try:
            services.password_confirm(user=request.user, password=form.cleaned_data["password"])
            _, raw = services.token_create(
                user=request.user,
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                expires_in_days=form.expires_in_days(),
            )
            request.session["new_api_token"] = raw
            return redirect("accounts:tokens")
        except ValidationError as exc:
            form.add_error("name", exc)
        except UserError as exc:
            form.add_error("password" if "password" in exc.message else "name", exc.message)
    return render(
        request,
        "accounts/tokens.html",
        {"form": form, "new_token": new_token, "tokens": request.user.api_tokens.all()},
    )


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        token = services.token_revoke(user=request.user, token_id=pk)
        messages.success(request, f"Token {token.name} ({token.prefix}…) is revoked; requests with it now fail.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("accounts:tokens")


@login_required
def wallet(request: HttpRequest) -> HttpResponse:
    challenge = None
    form = None
    if request.method == "POST" and "address" in request.POST:
        try:
            challenge = services.wallet_challenge_create(user=request.user, address=request.POST["address"])
            form = WalletForm(initial={"nonce": challenge.nonce})
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        except UserError as exc:
            messages.error(request, exc.message)
    elif request.method == "POST":
        form = WalletForm(request.POST)
        if form.is_valid():
            try:
                data = dict(form.cleaned_data)
                services.password_confirm(user=request.user, password=data.pop("password"))
                services.wallet_link(user=request.user, **data)
                messages.success(request, f"Wallet {request.user.wallet_address} is linked: rewards go there.")
                return redirect("accounts:wallet")
            except (ValidationError, UserError) as exc:
                messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
        challenge = request.user.wallet_challenges.filter(nonce=request.POST.get("nonce", "")).first()
    notices = request.user.notices.all()[:5]
    return render(request, "accounts/wallet.html", {"challenge": challenge, "form": form, "notices": notices})


class PasswordChangeView(auth_views.PasswordChangeView):
    """Changing the password also revokes every API token: one stolen before the change must stop working."""

    template_name = "accounts/password_change.html"
    success_url = "/accounts/password/done/"

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        revoked = services.tokens_revoke_all(user=self.request.user, reason="revoked by a password change")
        if revoked:
            messages.info(
                self.request, f"{revoked} API token(s) were revoked with the password change; create new ones."
            )
        return response
