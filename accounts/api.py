from __future__ import annotations

from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.models import ApiToken
from core.errors import UserError


class TokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "revoked_at"]


class TokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)


class TokenListView(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses=TokenSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(TokenSerializer(request.user.api_tokens.all(), many=True).data)

    @extend_schema(request=TokenCreateSerializer, responses=TokenSerializer)
    def post(self, request: Request) -> Response:
        serializer = TokenCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token, raw = services.token_create(user=request.user, name=serializer.validated_data["name"])
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


class WalletChallengeView(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=ChallengeSerializer, responses={201: dict})
    def post(self, request: Request) -> Response:
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
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=LinkSerializer, responses={200: dict})
    def post(self, request: Request) -> Response:
        serializer = LinkSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.wallet_link(user=request.user, **serializer.validated_data)
        return Response({"wallet_address": user.wallet_address, "linked_at": user.wallet_linked_at})


class MeView(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        user = request.user
        return Response({"username": user.username, "email": user.email, "wallet_address": user.wallet_address or None})
