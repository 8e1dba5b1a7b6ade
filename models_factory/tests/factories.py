from __future__ import annotations

from datanets.tests.factories import snapshot_with  # noqa: F401  (the Model Factory tests build on it)


def sentiment_records(n: int = 24) -> list[dict[str, str]]:
    good = ["works great and I feel much better", "excellent results with no side effects", "very happy with it"]
    bad = ["terrible headaches and nausea every day", "made everything worse, awful", "stopped it after a week of pain"]
    return [
        {
            "text": f"{(good if i % 2 == 0 else bad)[i % 3]} (review {i})",
            "label": "positive" if i % 2 == 0 else "negative",
        }
        for i in range(n)
    ]


def qa_records(n: int = 16) -> list[dict[str, str]]:
    return [
        {"question": f"What is the capital of region {i}?", "answer": f"The capital of region {i} is Town{i}."}
        for i in range(n)
    ]
