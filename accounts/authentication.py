from __future__ import annotations

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from accounts.models import ApiToken, User, hash_token
from accounts.scopes import required_scope


class ApiTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer dn_...`` (or ``Token dn_...``) with a key from the API tokens page."""

    keywords = (b"bearer", b"token")

    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in self.keywords:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header: send 'Bearer <your API token>'.")
        raw = parts[1].decode(errors="replace")
        token = ApiToken.objects.select_related("user").filter(token_hash=hash_token(raw)).first()
        if token is None:
            raise exceptions.AuthenticationFailed("Unknown API token. Create one on your API tokens page.")
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed(
                f"This API token ({token.prefix}…) was revoked on {token.revoked_at:%Y-%m-%d %H:%M} UTC"
                f"{' (' + token.revoked_reason + ')' if token.revoked_reason else ''}. "
                "Create a new one on your API tokens page."
            )
        if token.is_expired:
            raise exceptions.AuthenticationFailed(
                f"This API token ({token.prefix}…) expired on {token.expires_at:%Y-%m-%d %H:%M} UTC. "
                "Create a new one on your API tokens page."
            )
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("This account is disabled.")
        view = (getattr(request, "parser_context", None) or {}).get("view")
        needed = required_scope(view, request.method) if view is not None else "read"
        if needed not in token.scopes:
            raise exceptions.PermissionDenied(
                f"This API token ({token.prefix}…) lacks the '{needed}' scope it needs for this request; it has "
                f"{', '.join(token.scopes) or 'none'}. Create a token with '{needed}' on your API tokens page."
            )
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
