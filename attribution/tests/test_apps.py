"""Attribution plugs into the Model Factory from its AppConfig.ready(): the Model Factory never imports it."""

from __future__ import annotations

from attribution.indexes import index_build_request
from attribution.receipts import receipt_attach
from attribution.views import version_panel
from models_factory import hooks


def test_ready_subscribes_the_index_build_the_receipt_and_the_version_panel() -> None:
    assert index_build_request in hooks._version_registered
    assert receipt_attach in hooks._inference_done
    assert version_panel in hooks._version_panels
