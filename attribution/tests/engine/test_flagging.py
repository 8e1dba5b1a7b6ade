"""The flag rule: a threshold calibrated on the cross-fitted model's own confidence, and KNN-Shapley outliers."""

from __future__ import annotations

import numpy as np

from attribution.engine.flagging import (
    MARGIN_CEILING,
    MARGIN_FLOOR,
    label_contradicted,
    label_threshold,
    value_harmful,
)


def test_threshold_follows_the_models_confidence_within_bounds() -> None:
    labels = np.array([0, 0, 1, 1])
    sure = np.array([[0.99, 0.01], [0.98, 0.02], [0.03, 0.97], [0.9, 0.1]])
    unsure = np.array([[0.4, 0.3, 0.3], [0.45, 0.3, 0.25], [0.3, 0.4, 0.3], [0.5, 0.2, 0.3]])
    middling = np.array([[0.7, 0.3], [0.8, 0.2], [0.25, 0.75], [0.9, 0.1]])
    assert label_threshold(sure, labels) == MARGIN_CEILING  # mean 0.98, clipped
    assert label_threshold(unsure, labels) == MARGIN_FLOOR  # mean 0.42 over the agreeing records, raised
    assert abs(label_threshold(middling, labels) - 0.75) < 1e-9
    margin = middling[np.arange(4), 1 - labels] - middling[np.arange(4), labels]
    assert label_contradicted(margin, threshold=0.75).tolist() == [False, False, False, True]


def test_only_far_negative_values_with_a_doubted_label_are_harmful() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0.01, 0.001, 50), [-0.05, -0.05, 0.008]])
    own = np.concatenate([np.full(50, 0.9), [0.3, 0.95, 0.1]])
    harmful = value_harmful(values, own, threshold=0.8)
    assert harmful.tolist() == [False] * 50 + [True, False, False]
