from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import is_address, to_checksum_address

from accounts import hooks
from accounts.audit import audit_record
from accounts.models import ApiToken, Notice, User, WalletChallenge, hash_token, new_token_value
from accounts.scopes import clean_scopes
from core.errors import Forbidden, QuotaExceeded

CHALLENGE_TTL = timedelta(minutes=15)
MAX_ACTIVE_TOKENS = 25
MAX_OPEN_CHALLENGES = 5


def _lock_user(user: User) -> None:
    """Serialize one user's credential writes, so a cap holds across parallel requests."""
    User.objects.select_for_update().filter(pk=user.pk).first()


def password_confirm(*, user: User, password: str) -> None:
    """Minting a credential or re-pointing rewards needs the account's password, not only a live session."""
    if not password or not user.check_password(password):
        raise Forbidden("Your password is not right. Enter your current password to confirm this change.")


def token_create(
    *, user: User, name: str, scopes: list[str] | None = None, expires_in_days: int | None = 90
) -> tuple[ApiToken, str]:
    """Create an API token; returns the row and the raw value, which is never shown again. ``scopes`` None means
    every scope; ``expires_in_days`` None means it never expires."""
    name = name.strip()
    if not name:
        raise ValidationError("Give the token a name so you can tell it apart later (for example 'laptop').")
    try:
        scopes = clean_scopes(scopes)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    if expires_in_days is not None and not 1 <= expires_in_days <= 366:
        raise ValidationError("A token lasts between 1 and 366 days (or choose 'never').")
    expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days is not None else None
    with transaction.atomic():
        _lock_user(user)
        if ApiToken.objects.filter(user=user, revoked_at__isnull=True).count() >= MAX_ACTIVE_TOKENS:
            raise QuotaExceeded(
                f"You already have {MAX_ACTIVE_TOKENS} active API tokens: revoke one you no longer use, then create "
                "a new one."
            )
        raw = new_token_value()
        token = ApiToken.objects.create(
            user=user,
            name=name[:100],
            prefix=raw[:10],
            token_hash=hash_token(raw),
            scopes=scopes,
            expires_at=expires_at,
        )
        audit_record(
            actor=user,
            action="token.create",
            target=token,
            after={"name": token.name, "prefix": token.prefix, "scopes": scopes, "expires_at": str(expires_at)},
        )
    return token, raw


def tokens_revoke_all(*, user: User, reason: str) -> int:
    """Revoke every active token of the user (after a password change: a token stolen before must stop working)."""
    with transaction.atomic():
        now = timezone.now()
        active = list(ApiToken.objects.select_for_update().filter(user=user, revoked_at__isnull=True))
        for token in active:
            token.revoked_at, token.revoked_reason = now, reason[:200]
            token.save(update_fields=["revoked_at", "revoked_reason"])
            audit_record(actor=user, action="token.revoke", target=token, after={"reason": reason})
    return len(active)


def token_revoke(*, user: User, token_id: int) -> ApiToken:
    with transaction.atomic():
        token = ApiToken.objects.select_for_update().filter(pk=token_id, user=user).first()
        if token is None:
            raise ValidationError("No such token among yours.")
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            audit_record(actor=user, action="token.revoke", target=token, after={"prefix": token.prefix})
    return token


def wallet_challenge_create(*, user: User, address: str) -> WalletChallenge:
    address = address.strip()
    if not is_address(address):
        raise ValidationError(f"{address!r} is not an Ethereum address (expected 0x followed by 40 hex digits).")
    address = to_checksum_address(address)
    nonce = secrets.token_hex(16)
    now = timezone.now()
    with transaction.atomic():
        _lock_user(user)
        WalletChallenge.objects.filter(user=user, expires_at__lt=now).delete()  # expired ones are never kept
        if WalletChallenge.objects.filter(user=user, used_at__isnull=True).count() >= MAX_OPEN_CHALLENGES:
            raise QuotaExceeded(
                f"You have {MAX_OPEN_CHALLENGES} unsigned wallet challenges already: sign one of them, or wait "
                f"{int(CHALLENGE_TTL.total_seconds() // 60)} minutes for them to expire."
            )
        return _challenge_create(user=user, address=address, nonce=nonce, now=now)


def _challenge_create(*, user: User, address: str, nonce: str, now: datetime) -> WalletChallenge:
    message = (
        "Datanets wallet link\n"
        f"Account: {user.username}\n"
        f"Address: {address}\n"
        f"Nonce: {nonce}\n"
        f"Issued: {now:%Y-%m-%dT%H:%M:%SZ}\n"
        "Signing this proves you control the address. It costs nothing and sends no transaction."
    )
    return WalletChallenge.objects.create(
        user=user, address=address, nonce=nonce, message=message, expires_at=now + CHALLENGE_TTL
    )


def wallet_link(*, user: User, nonce: str, signature: str) -> User:
    """Check an EIP-191 personal_sign signature of a challenge and link its address to the user."""
    with transaction.atomic():
        challenge = WalletChallenge.objects.select_for_update().filter(user=user, nonce=nonce).first()
        if challenge is None:
            raise ValidationError("Unknown challenge: ask for a new one and sign it.")
        if challenge.used_at is not None:
            raise ValidationError("This challenge was already used: ask for a new one.")
        if challenge.expires_at < timezone.now():
            raise ValidationError("This challenge expired (they last 15 minutes): ask for a new one.")
        try:
            recovered = Account.recover_message(encode_defunct(text=challenge.message), signature=signature.strip())
        except Exception:  # eth-account raises several types for malformed signatures
            raise ValidationError("The signature is malformed: sign the exact message with personal_sign.") from None
        if recovered != challenge.address:
            raise ValidationError(
                f"The signature was made by {recovered}, not by {challenge.address}. Sign with the address you entered."
            )
        refusal = hooks.wallet_link_refusal(user, challenge.address)
        if refusal:
            raise ValidationError(refusal)
        challenge.used_at = timezone.now()
        challenge.save(update_fields=["used_at"])
        before = {"wallet_address": user.wallet_address}
        user.wallet_address = challenge.address
        user.wallet_linked_at = timezone.now()
        try:
            with transaction.atomic():
                user.save(update_fields=["wallet_address", "wallet_linked_at"])
        except IntegrityError:
            raise ValidationError("This address is already linked to another account.") from None
        audit_record(
            actor=user, action="wallet.link", target=user, before=before, after={"wallet_address": user.wallet_address}
        )
        if before["wallet_address"]:  # a first link re-points nothing; a change is what a thief would make
            notice_wallet_changed(user=user, old=before["wallet_address"], new=user.wallet_address)
    return user


def notice_wallet_changed(*, user: User, old: str, new: str) -> Notice:
    """Tell the owner, on the account pages and by email, that rewards now go elsewhere and wait a while."""
    hours = settings.WALLET_CHANGE_HOLD_HOURS
    until = timezone.now() + timedelta(hours=hours)
    message = (
        f"Your reward wallet changed from {old} to {new} on {timezone.now():%Y-%m-%d %H:%M} UTC. Payouts to the new "
        f"address are held for {hours} hours (until {until:%Y-%m-%d %H:%M} UTC). If you did not make this change, "
        "change your password now (that also revokes every API token) and link your own address again."
    )
    notice = Notice.objects.create(user=user, kind="wallet_changed", message=message)
    if user.email:
        transaction.on_commit(lambda: _notice_email(notice.pk))
    return notice


def _notice_email(notice_id: int) -> None:
    notice = Notice.objects.select_related("user").get(pk=notice_id)
    sent = send_mail(
        subject="Your Datanets reward wallet changed",
        message=notice.message,
        from_email=None,
        recipient_list=[notice.user.email],
        fail_silently=True,  # the notice on the account page stands; a mail server outage must not undo the link
    )
    if sent:
        Notice.objects.filter(pk=notice_id).update(emailed_at=timezone.now())


def reward_address(*, user: User) -> str:
    """The only address rewards may go to. Unlinked users get an error that says how to link one."""
    if not user.wallet_address:
        raise ValidationError("Link a wallet on your account page before rewards can be paid to you.")
    return user.wallet_address
