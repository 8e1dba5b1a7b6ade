"""Prepaid credits: the one place a balance changes. Each change locks the account row and writes an audit row."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from accounts.audit import audit_record
from accounts.models import CreditAccount, User
from core.errors import UserError


class InsufficientCredit(UserError):
    """A debit larger than the balance; nothing was taken."""

    def __init__(self, *, balance: int, amount: int) -> None:
        super().__init__(
            f"This needs {amount} credits and your balance is {balance}. Buy credits first.",
            extra={"code": "insufficient_credit", "balance": balance, "needed": amount},
        )
        self.balance = balance
        self.amount = amount


def credit_balance(*, user: User) -> int:
    """The user's balance (0 without an account). A read: a debit re-checks under the row lock."""
    account = CreditAccount.objects.filter(user=user).first()
    return account.balance if account else 0


def _credit(*, actor: User | None, user: User, amount: int, action: str, after: dict[str, Any]) -> CreditAccount:
    """Add ``amount`` to the user's balance under a row lock, with an audit row (grants and refunds)."""
    with transaction.atomic():
        account, _ = CreditAccount.objects.select_for_update().get_or_create(user=user)
        before = account.balance
        account.balance += amount
        account.save(update_fields=["balance", "updated_at"])
        audit_record(
            actor=actor,
            action=action,
            target=account,
            before={"balance": before},
            after={"balance": account.balance, **after},
        )
    return account


def credits_grant(*, actor: User | None, user: User, amount: int) -> CreditAccount:
    if amount <= 0:
        raise UserError("Grant a positive number of credits.")
    return _credit(actor=actor, user=user, amount=amount, action="credits.grant", after={})


def credits_debit(*, user: User, amount: int, reason: str) -> CreditAccount:
    """Take ``amount`` credits from the user's balance, or raise ``InsufficientCredit`` and take nothing.

    Runs inside the caller's transaction when there is one, so the debit and what it pays for commit together."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise UserError("A debit must be a whole, non-negative number of credits.")
    with transaction.atomic():
        account = CreditAccount.objects.select_for_update().filter(user=user).first()
        balance = account.balance if account else 0
        if account is None or balance < amount:
            raise InsufficientCredit(balance=balance, amount=amount)
        account.balance -= amount
        account.save(update_fields=["balance", "updated_at"])
        audit_record(
            actor=user,
            action="credits.debit",
            target=account,
            before={"balance": balance},
            after={"balance": account.balance, "amount": amount, "reason": reason},
        )
    return account


def credits_refund(*, user: User, amount: int, reason: str) -> CreditAccount:
    """Give back a reservation whose work failed (the reserve-then-run order means a refused call never runs)."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise UserError("A refund must be a whole, non-negative number of credits.")
    return _credit(
        actor=None, user=user, amount=amount, action="credits.refund", after={"amount": amount, "reason": reason}
    )
