"""The Model Factory calls the apps to its right only through the subscribers they register in ready()."""

from __future__ import annotations

from typing import Any

import pytest

from models_factory import hooks


@pytest.fixture
def empty_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("_version_registered", "_inference_done", "_version_panels"):
        monkeypatch.setattr(hooks, name, [])


def test_subscribers_run_in_order_once_each(empty_hooks: None) -> None:
    calls: list[Any] = []

    def first(*, version: Any, actor: Any) -> None:
        calls.append(("first", version, actor))

    def second(*, version: Any, actor: Any) -> None:
        calls.append(("second", version, actor))

    hooks.on_version_registered(first)
    hooks.on_version_registered(second)
    hooks.on_version_registered(first)  # a second ready() does not subscribe twice
    hooks.version_registered(version="v", actor="a")
    assert calls == [("first", "v", "a"), ("second", "v", "a")]


def test_a_failing_inference_subscriber_does_not_fail_the_paid_call(
    empty_hooks: None, caplog: pytest.LogCaptureFixture
) -> None:
    class Paid:
        pk = 7

    def broken(inference: Any) -> dict[str, Any]:
        raise RuntimeError("boom")

    hooks.on_inference(broken)
    hooks.on_inference(lambda inference: {"receipt": None})
    assert hooks.inference_done(Paid()) == {"receipt": None}  # type: ignore[arg-type]
    assert "failed after inference 7" in caplog.text
