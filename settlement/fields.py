"""Token amounts: integers of up to 78 digits (uint256), exact on every database.

SQLite's NUMERIC affinity turns integers above 2**63 into lossy floats, and 18-decimal amounts pass 2**63 at about
nine tokens, so on SQLite amounts are stored as decimal text. PostgreSQL gets ``numeric(78, 0)``. Sums are made in
Python, never in SQL, so both behave alike.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

MAX_UINT256 = 2**256 - 1


class TokenAmountField(models.Field):
    description = "A non-negative integer amount in token base units (uint256)"

    def db_type(self, connection: Any) -> str:
        return "numeric(78, 0)" if connection.vendor == "postgresql" else "text"

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> int | None:
        return None if value is None else int(value)

    def to_python(self, value: Any) -> int | None:
        if value is None or isinstance(value, int):
            return value
        try:
            return int(str(value))
        except ValueError:
            raise ValidationError(f"{value!r} is not a whole number of base units.") from None

    def get_prep_value(self, value: Any) -> Any:
        value = self.to_python(value)
        if value is not None and not 0 <= value <= MAX_UINT256:
            raise ValueError(f"token amount {value} is outside uint256")
        return value

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        value = self.get_prep_value(value) if not prepared else value
        if value is None or connection.vendor == "postgresql":
            return value
        return str(value)
