"""Record kinds a Datanet can take, and validation of one raw record into its canonical form.

A canonical record holds only the kind's fields, every value an NFC-normalized, stripped string, and no empty
optional fields, so that two uploads of the same content give the same canonical JSON and the same hash.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any


class RecordError(ValueError):
    """A record that does not fit its Datanet; the message is shown to the contributor as is."""


@dataclass(frozen=True)
class FieldSpec:
    name: str
    required: bool = True
    max_chars: int | None = None
    # Label fields hold a value from the Datanet's label set and are left out of near-duplicate text.
    is_label: bool = False


@dataclass(frozen=True)
class RecordKind:
    key: str
    name: str
    fields: list[FieldSpec] = field(default_factory=list)

    @property
    def field_names(self) -> list[str]:
        return [spec.name for spec in self.fields]

    @property
    def label_field(self) -> str | None:
        return next((spec.name for spec in self.fields if spec.is_label), None)

    def text_of(self, record: dict[str, Any]) -> str:
        """The text compared for near duplicates: the record's text fields in schema order, joined by newlines.

        The label is left out on purpose: the same text filed under two labels is a near duplicate (and a
        conflict a curator should see), not two different records.
        """
        parts = [record.get(spec.name) for spec in self.fields if not spec.is_label]
        return "\n".join(part for part in parts if isinstance(part, str) and part)


RECORD_KINDS: dict[str, RecordKind] = {
    kind.key: kind
    for kind in (
        RecordKind("text", "Plain text", [FieldSpec("text")]),
        RecordKind(
            "labeled_text",
            "Labeled text",
            [FieldSpec("text"), FieldSpec("label", max_chars=100, is_label=True)],
        ),
        RecordKind(
            "instruction",
            "Instruction and response",
            [
                FieldSpec("instruction"),
                FieldSpec("input", required=False),
                FieldSpec("response"),
            ],
        ),
        RecordKind(
            "qa",
            "Question and answer",
            [
                FieldSpec("question"),
                FieldSpec("context", required=False),
                FieldSpec("answer"),
            ],
        ),
    )
}


def get_kind(kind: str) -> RecordKind:
    try:
        return RECORD_KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown record kind {kind!r}; known kinds: {', '.join(RECORD_KINDS)}") from None


def kind_fields(kind: str) -> list[str]:
    return get_kind(kind).field_names


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _quote(value: str, limit: int = 40) -> str:
    return '"' + (value if len(value) <= limit else value[: limit - 1] + "…") + '"'


def _clean_string(name: str, value: str, max_chars: int) -> str:
    value = unicodedata.normalize("NFC", value).strip()
    if "\x00" in value:
        # PostgreSQL text columns cannot hold NUL, and no real text needs it.
        raise RecordError(f'field "{name}" contains a NUL character (\\u0000); remove it')
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RecordError(
            f'field "{name}" contains an unpaired surrogate (a broken \\ud800-\\udfff escape); fix the text'
        ) from None
    if len(value) > max_chars:
        raise RecordError(f'field "{name}" is {len(value):,} characters long; the limit is {max_chars:,}')
    return value


def validate_record(
    raw: Any, *, kind: str, labels: list[str] | None = None, max_chars: int = 100_000
) -> dict[str, str]:
    """Return the canonical record for `raw`, or raise RecordError saying what is wrong in the user's terms."""
    record_kind = get_kind(kind)
    if not isinstance(raw, dict):
        raise RecordError(
            f"a record must be an object with fields {', '.join(record_kind.field_names)}, not {_type_name(raw)}"
        )
    names = record_kind.field_names
    unknown = [key for key in raw if key not in names]
    if unknown:
        listed = ", ".join(_quote(str(key)) for key in unknown)
        noun = "field" if len(unknown) == 1 else "fields"
        raise RecordError(f"unknown {noun} {listed} (this Datanet takes: {', '.join(names)})")

    clean: dict[str, str] = {}
    for spec in record_kind.fields:
        value = raw.get(spec.name)
        if value is None:
            if spec.required:
                raise RecordError(f'missing required field "{spec.name}"')
            continue
        if not isinstance(value, str):
            raise RecordError(f'field "{spec.name}" must be a string, not {_type_name(value)}')
        limit = min(max_chars, spec.max_chars) if spec.max_chars else max_chars
        value = _clean_string(spec.name, value, limit)
        if not value:
            if spec.required:
                raise RecordError(f'field "{spec.name}" is empty')
            continue
        if spec.is_label:
            if labels is None:
                raise ValueError(f"record kind {kind!r} needs the Datanet's label set")
            allowed = [unicodedata.normalize("NFC", label).strip() for label in labels]
            if value not in allowed:
                raise RecordError(f'field "{spec.name}" must be one of: {", ".join(allowed)} (got {_quote(value)})')
        clean[spec.name] = value
    return clean
