"""URL converters. ``id``: a positive integer that fits a 64-bit database column (1 to 18 digits), so an id too
long for the database is a 404 like any unknown id, never an overflow error deep in a query."""

from __future__ import annotations


class IdConverter:
    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int | str) -> str:
        return str(value)


ID_REGEX = IdConverter.regex
