"""The demo's planted label flips: how they are chosen, and how well each valuation signal finds them.

Selection (prints the line numbers that demo/loader.py keeps in PLANTED_LINES): bob's file is the second half of
the package's 600 training reviews. Among its polar reviews (positive or negative), not duplicated elsewhere, we take
the 12 whose label a sentiment model trained only on the package's separate test split (379 reviews) is most sure
of: reviews whose sentiment is unmistakable, so flipping them is a clear mislabel rather than a judgement call.
The test split never enters the demo Datanet, so the chooser is independent of every model the platform trains.

Detection: with those 12 labels flipped, every signal the epoch valuation computes ranks the 600 training reviews,
and we report ROC-AUC and how many planted flips fall in the worst 5% and 10%: KNN-Shapley (k=5, low first) against
the test split as validation, self-influence of a Linear head (exact Fisher, damping 1.0, as the platform builds it),
training loss, and the cross-fitted margin (attribution.engine.crossfit, 10 folds). The same run lists, as a
reference, a random choice of 12 polar flips (the earlier demo picked every 12th polar review).

Flag rule on the platform (``--platform``): loads the demo into a scratch database (``benchmarks/out/demo_flips/var``,
reused on a second run), trains the demo model, builds its index and runs the platform's epoch valuation, then
prints precision and recall of its flags (``attribution.engine.flagging``) beside the earlier rule (each of
KNN-Shapley, the cross-fitted margin and self-influence flagging its worst 5%, united; re-implemented here from the
same signals), and how often receipts abstain for random strings and for held-out reviews.
Usage: python benchmarks/attribution/demo_flips.py [--platform]   (about 3 minutes on 2 CPU cores with --platform)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import digits
import reviews

from attribution.engine import GradientIndex, knn_shapley
from attribution.engine.crossfit import _fit_softmax, cross_fit

OUT = digits.OUT / "demo_flips"
N_FLIPS = 12
HALF = 300  # alice holds the first 300 training reviews, bob the rest


def embeddings() -> dict[str, np.ndarray]:
    path = OUT / "emb.npz"
    if path.exists():
        return dict(np.load(path))
    reviews.setup_django()
    from demo.loader import LABELS, drug_reviews

    data: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        rows = drug_reviews(split)
        texts = [r["text"] for r in rows]
        data[f"x_{split}"] = reviews.encode(texts, 128).numpy()
        data[f"y_{split}"] = np.array([LABELS.index(r["label"]) for r in rows])
        data[f"dup_{split}"] = np.array([texts.index(t) != i for i, t in enumerate(texts)])
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez(path, **data)
    return data


def choose(data: dict[str, np.ndarray]) -> np.ndarray:
    """Indices (into the 600 training reviews) of the 12 clearest polar reviews in bob's half."""
    x_test = torch.from_numpy(data["x_test"].astype(np.float64))
    chooser = _fit_softmax(x_test, torch.from_numpy(data["y_test"]), 3, 1e-4, 200)
    with torch.no_grad():
        probs = torch.softmax(chooser(torch.from_numpy(data["x_train"].astype(np.float64))), dim=1).numpy()
    y = data["y_train"]
    sure = probs[np.arange(len(y)), y]
    candidates = [i for i in np.argsort(-sure) if i >= HALF and y[i] != 1 and not data["dup_train"][i]]
    return np.sort(np.array(candidates[:N_FLIPS]))


def flip(y: np.ndarray, rows: np.ndarray) -> np.ndarray:
    out = y.copy()
    out[rows] = 2 - out[rows]  # negative (0) <-> positive (2)
    return out


def train_head(x: torch.Tensor, y: torch.Tensor) -> torch.nn.Module:
    return _fit_softmax(x.double(), y, 3, 1e-4, 300).float()


def signals(data: dict[str, np.ndarray], y: np.ndarray) -> dict[str, tuple[np.ndarray, float]]:
    x = data["x_train"]
    out: dict[str, tuple[np.ndarray, float]] = {}
    t = time.perf_counter()
    values = knn_shapley(x, y, data["x_test"], data["y_test"], k=5)
    out["KNN-Shapley (k=5), low first"] = (-values, time.perf_counter() - t)
    t = time.perf_counter()
    xt, yt = torch.from_numpy(x).float(), torch.from_numpy(y)
    head = train_head(xt, yt)

    def ce(o: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(o, target, reduction="none")

    index = GradientIndex.build(head, ce, xt, yt, hessian="fisher", damping=1.0)
    out["self-influence (Fisher, damping 1.0)"] = (index.self_scores(), time.perf_counter() - t)
    with torch.no_grad():
        out["training loss"] = (ce(head(xt), yt).numpy(), 0.0)
    t = time.perf_counter()
    out["cross-fitted margin (10 folds)"] = (cross_fit(x, y).margin, time.perf_counter() - t)
    return out


def earlier_rule(values: np.ndarray, margin: np.ndarray, self_inf: np.ndarray | None) -> np.ndarray:
    """The flag rule before issue 11: each signal flags a bounded tail (5%), united."""
    n = len(values)
    tail = max(1, int(np.ceil(0.05 * n)))
    harmful_cut = float(np.sort(values)[tail - 1])
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median))) * 1.4826
    low_cut = median - 3 * mad if mad > 0 else -np.inf
    negative = ((values < 0) & (values <= harmful_cut)) | (values < low_cut)
    disagreed = margin >= max(0.5, float(np.sort(margin)[::-1][tail - 1]))
    outlying = np.zeros(n, dtype=bool)
    if self_inf is not None:
        q1, q3 = np.percentile(self_inf, [25, 75])
        outlying = self_inf > q3 + 3 * (q3 - q1)
    return negative | disagreed | outlying


def platform() -> None:
    """The demo as `make run` trains it, valued by the platform; the earlier and the current flag rule."""
    import os

    var = OUT / "var"
    os.environ["DATANETS_VAR_DIR"] = str(var)
    reviews.setup_django()
    from django.core.management import call_command

    from attribution.engine.crossfit import cross_fit as fit
    from attribution.indexes import closest_similarity, index_build
    from attribution.models import AttributionIndex, RecordValuation
    from attribution.selectors import train_entries
    from attribution.valuation import valuation_run
    from core.models import Job
    from datanets.models import Record
    from demo.loader import DEMO_MODEL, PLANTED_LINES, drug_reviews, load_demo
    from models_factory import predictors
    from models_factory import services as mf
    from models_factory.models import ModelVersion, TrainingRun

    started = time.perf_counter()
    var.mkdir(parents=True, exist_ok=True)
    call_command("migrate", verbosity=0)
    load_demo()
    run = TrainingRun.objects.get(ml_model__name=DEMO_MODEL)
    if not ModelVersion.objects.filter(run=run).exists():
        mf.training_run_execute(job_id=str(run.job_id))
    version = ModelVersion.objects.get(run=run)
    record = AttributionIndex.objects.get(version=version)
    if record.status != AttributionIndex.Status.READY:
        index_build(job_id=str(record.job_id))
        record.refresh_from_db()
    job = Job.objects.filter(kind="valuation", target_id=str(version.pk)).latest("created_at")
    valuation_run(job_id=str(job.pk))
    print(f"\nplatform demo (train, index, value): {time.perf_counter() - started:.0f} s")
    entries = train_entries(version)
    ids = [e[0] for e in entries]
    rows = {v.record_id: v for v in RecordValuation.objects.filter(version=version)}
    planted = set(
        Record.objects.filter(
            contributor__username="bob", line_no__in=PLANTED_LINES, datanet=version.ml_model.datanet
        ).values_list("pk", flat=True)
    )
    truth = np.array([i in planted for i in ids])
    values = np.array([rows[i].knn_shapley for i in ids])
    self_inf = np.array([rows[i].self_influence for i in ids], dtype=np.float64)
    emb = np.load(f"{record.path}/embeddings.npy")
    labels = predictors.classifier_predictor(version).labels
    y = np.array([labels.index(e[3]["label"]) for e in entries])
    before = earlier_rule(values, fit(emb, y, n_classes=len(labels)).margin, self_inf)
    after = np.array([rows[i].flagged for i in ids])
    n_planted = int(truth.sum())
    print(f"{n_planted} of the {len(PLANTED_LINES)} planted flips land in the {len(ids)} training records\n")
    print("| flag rule | flags | planted flagged | false flags | precision | recall |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, mask in (
        ("before: three signals, worst 5% each, united", before),
        ("after: attribution.engine.flagging", after),
    ):
        hit = int((mask & truth).sum())
        print(
            f"| {name} | {int(mask.sum())} | {hit}/{n_planted} | {int(mask.sum()) - hit} | "
            f"{hit / max(1, int(mask.sum())):.2f} | {hit / max(1, n_planted):.2f} |"
        )
    print(f"\nratio after/before: false flags {((after & ~truth).sum()) / max(1, (before & ~truth).sum()):.2f}x")

    predictor = predictors.classifier_predictor(version)
    chance = float(record.params["chance_similarity"])
    rng = np.random.default_rng(7)
    letters = list("abcdefghijklmnopqrstuvwxyz ")
    gibberish = ["".join(rng.choice(letters, int(rng.integers(10, 50)))) for _ in range(32)]
    held_out = [r["text"] for r in drug_reviews("test")[:64]]
    print(f"\nreceipts abstain when the input is no closer than {chance:.3f} (cosine) to every training record:")
    for name, texts in (("random strings", gibberish), ("held-out reviews", held_out)):
        close = closest_similarity(emb, predictor.embed(texts))
        print(f"  {name}: {int((close <= chance).sum())}/{len(texts)} abstain")


def main() -> None:
    from sklearn.metrics import roc_auc_score

    if "--platform" in sys.argv:
        print(f"machine: {digits.machine()}")
        platform()
        return

    torch.set_num_threads(1)
    print(f"machine: {digits.machine()}")
    started = time.perf_counter()
    data = embeddings()
    print(f"embeddings: {time.perf_counter() - started:.1f} s")
    chosen = choose(data)
    print(f"PLANTED_LINES (1-based lines of bob-reviews.jsonl): {tuple(int(i) - HALF + 1 for i in chosen)}")
    rng = np.random.default_rng(0)
    polar = np.flatnonzero((data["y_train"] != 1) & (np.arange(len(data["y_train"])) >= HALF))
    choices = {"clear (demo)": chosen, "random polar": np.sort(rng.choice(polar, N_FLIPS, replace=False))}
    n = len(data["y_train"])
    print(f"\n| flips | signal | ROC-AUC | planted in worst 5% ({n // 20}) | in worst 10% ({n // 10}) | seconds |")
    print("|---|---|---:|---:|---:|---:|")
    for name, rows in choices.items():
        y = flip(data["y_train"], rows)
        truth = np.zeros(n, dtype=bool)
        truth[rows] = True
        for label, (score, seconds) in signals(data, y).items():
            order = np.argsort(-score)
            print(
                f"| {name} | {label} | {roc_auc_score(truth, score):.3f} | {int(truth[order[: n // 20]].sum())}/"
                f"{N_FLIPS} | {int(truth[order[: n // 10]].sum())}/{N_FLIPS} | {seconds:.2f} |"
            )


if __name__ == "__main__":
    main()
