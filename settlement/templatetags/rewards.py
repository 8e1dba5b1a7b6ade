from __future__ import annotations

from django import template

from settlement.selectors import tokens as tokens_text

register = template.Library()


@register.filter
def tokens(amount: int | str | None) -> str:
    """Base units shown as tokens (18 decimals)."""
    return "–" if amount is None or amount == "" else tokens_text(amount)
