from __future__ import annotations

from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.models import ApiToken
from accounts.scopes import ALL_SCOPES
from core.errors import Forbidden, UserError


class TokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "scopes", "created_at", "expires_at", "last_used_at", "revoked_at"]


class TokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    password = serializers.CharField(write_only=True, help_text="Your current password, to confirm.")
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=ALL_SCOPES), required=False, help_text="Default: every scope."
    )
    expires_in_days = serializers.IntegerField(min_value=1, max_value=366, required=False, allow_null=True, default=90)


def _require_browser_session(request: Request, what: str) -> None:
    """A stolen API token must not mint another token or re-point the rewards."""
    if isinstance(request.auth, ApiToken):
        raise Forbidden(f"{what} needs a signed-in browser session and your password, not an API token.")


class TokenListView(APIView):
    throttle_scope = "tokens"
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses=TokenSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(TokenSerializer(request.user.api_tokens.all(), many=True).data)

    @extend_schema(
        request=TokenCreateSerializer,
        responses={
            201: inline_serializer(
                "TokenCreated",
                {
                    **{name: serializers.CharField() for name in ("name", "prefix")},
                    "id": serializers.IntegerField(),
                    "scopes": serializers.ListField(child=serializers.CharField()),
                    "created_at": serializers.DateTimeField(),
                    "expires_at": serializers.DateTimeField(allow_null=True),
                    "token": serializers.CharField(help_text="The raw token; shown only this once."),
                },
            )
        },
    )
    def post(self, request: Request) -> Response:
        _require_browser_session(request, "Creating an API token")
        serializer = TokenCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        services.password_confirm(user=request.user, password=data["password"])
        token, raw = services.token_create(
            user=request.user, name=data["name"], scopes=data.get("scopes"), expires_in_days=data["expires_in_days"]
        )
        return Response({**TokenSerializer(token).data, "token": raw}, status=status.HTTP_201_CREATED)


class TokenRevokeView(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=None, responses=TokenSerializer)
    def post(self, request: Request, pk: int) -> Response:
        try:
            token = services.token_revoke(user=request.user, token_id=pk)
        except ValidationError as exc:
            raise UserError(" ".join(exc.messages)) from None
        return Response(TokenSerializer(token).data)


class ChallengeSerializer(serializers.Serializer):
    address = serializers.CharField(max_length=64)


class LinkSerializer(serializers.Serializer):
    nonce = serializers.CharField(max_length=64)
    signature = serializers.CharField(max_length=200)
    password = serializers.CharField(write_only=True, help_text="Your current password, to confirm.")


class WalletChallengeView(APIView):
    throttle_scope = "wallet"
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        request=ChallengeSerializer,
        responses={
            201: inline_serializer(
                "WalletChallenge",
                {
                    "address": serializers.CharField(),
                    "nonce": serializers.CharField(),
                    "message": serializers.CharField(help_text="Sign this text with the wallet (EIP-191)."),
                    "expires_at": serializers.DateTimeField(),
                },
            )
        },
    )
    def post(self, request: Request) -> Response:
        _require_browser_session(request, "Linking a wallet")
        serializer = ChallengeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        challenge = services.wallet_challenge_create(user=request.user, address=serializer.validated_data["address"])
        return Response(
            {
                "address": challenge.address,
                "nonce": challenge.nonce,
                "message": challenge.message,
                "expires_at": challenge.expires_at,
            },
            status=status.HTTP_201_CREATED,
        )


class WalletLinkView(APIView):
    throttle_scope = "wallet"
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        request=LinkSerializer,
        responses=inline_serializer(
            "WalletLinked",
            {"wallet_address": serializers.CharField(), "linked_at": serializers.DateTimeField(allow_null=True)},
        ),
    )
    def post(self, request: Request) -> Response:
        _require_browser_session(request, "Linking a wallet")
        serializer = LinkSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        services.password_confirm(user=request.user, password=data.pop("password"))
        user = services.wallet_link(user=request.user, **data)
        return Response({"wallet_address": user.wallet_address, "linked_at": user.wallet_linked_at})


class MeView(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        responses=inline_serializer(
            "Me",
            {
                "username": serializers.CharField(),
                "email": serializers.CharField(),
                "wallet_address": serializers.CharField(allow_null=True),
            },
        )
    )
    def get(self, request: Request) -> Response:
        user = request.user
        return Response({"username": user.username, "email": user.email, "wallet_address": user.wallet_address or None})
