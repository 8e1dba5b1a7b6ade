import pytest

from datanets.ingest.schema import (
    RECORD_KINDS,
    RecordError,
    kind_fields,
    validate_record,
)

LABELS = ["negative", "positive"]


def test_kinds_and_their_fields() -> None:
    assert kind_fields("text") == ["text"]
    assert kind_fields("labeled_text") == ["text", "label"]
    assert set(kind_fields("instruction")) == {"instruction", "input", "response"}
    assert set(kind_fields("qa")) == {"question", "context", "answer"}
    assert RECORD_KINDS["qa"].name == "Question and answer"


def test_valid_record_is_canonical_nfc_stripped_and_drops_empty_optional_fields() -> None:
    raw = {"instruction": "  Cafe\u0301 ?  ", "input": "   ", "response": "ok\n"}
    assert validate_record(raw, kind="instruction") == {
        "instruction": "Café ?",
        "response": "ok",
    }


def test_labeled_text_accepts_a_label_from_the_set() -> None:
    assert validate_record({"text": "great", "label": "positive"}, kind="labeled_text", labels=LABELS) == {
        "text": "great",
        "label": "positive",
    }


@pytest.mark.parametrize(
    ("raw", "kind", "message"),
    [
        ({}, "text", 'missing required field "text"'),
        ({"text": None}, "text", 'missing required field "text"'),
        ({"text": "   "}, "text", 'field "text" is empty'),
        ({"text": 3}, "text", 'field "text" must be a string, not a number'),
        ({"text": ["a"]}, "text", 'field "text" must be a string, not a list'),
        ({"text": True}, "text", 'field "text" must be a string, not true/false'),
        (
            {"text": "a", "foo": 1},
            "text",
            'unknown field "foo" (this Datanet takes: text)',
        ),
        (
            {"text": "a", "label": "positive", "foo": 1},
            "labeled_text",
            'unknown field "foo" (this Datanet takes: text, label)',
        ),
        ({"text": "a\x00b"}, "text", 'field "text" contains a NUL character'),
        ({"text": "a\ud800"}, "text", 'field "text" contains an unpaired surrogate'),
        (["text"], "text", "a record must be an object with fields text, not a list"),
        ({"question": "q?"}, "qa", 'missing required field "answer"'),
    ],
)
def test_schema_violations_say_what_is_wrong(raw: object, kind: str, message: str) -> None:
    with pytest.raises(RecordError) as caught:
        validate_record(raw, kind=kind, labels=LABELS)
    assert str(caught.value).startswith(message)


def test_label_outside_the_label_set() -> None:
    with pytest.raises(RecordError) as caught:
        validate_record({"text": "so so", "label": "meh"}, kind="labeled_text", labels=LABELS)
    assert str(caught.value) == 'field "label" must be one of: negative, positive (got "meh")'


def test_text_over_the_limit() -> None:
    with pytest.raises(RecordError) as caught:
        validate_record({"text": "x" * 1001}, kind="text", max_chars=1000)
    assert str(caught.value) == 'field "text" is 1,001 characters long; the limit is 1,000'


def test_text_of_joins_text_fields_and_leaves_the_label_out() -> None:
    qa = RECORD_KINDS["qa"]
    assert qa.text_of({"question": "Why?", "context": "Because.", "answer": "So."}) == "Why?\nBecause.\nSo."
    assert RECORD_KINDS["labeled_text"].text_of({"text": "great", "label": "positive"}) == "great"
