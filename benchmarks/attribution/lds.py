"""Linear datamodeling score (LDS) of our gradient index beside dattri, TRAK, captum and pyDVL, on sklearn digits.

Ground truth: 100 models per architecture retrained on random 50% subsets of the training set; for each test point,
the Spearman correlation between the sum of a method's scores over a subset and minus that subset model's test loss,
averaged over test points. Every method reads the same data file, model weights and subsets. References run in
their own venvs (benchmarks/.envs/<name>, created on first use); one that cannot install or run is reported, not
fatal.  Usage: python benchmarks/attribution/lds.py [--quick]
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import digits
from envs import ensure_env, env_python

from attribution.engine import GradientIndex

OUT = digits.OUT / "lds"
RUNNERS = Path(__file__).resolve().parent / "runners"
REFERENCES = [
    # (label, env, runner, extra args)
    ("dattri IF (explicit Hessian)", "dattri", "dattri_if.py", ["if"]),
    ("dattri TRAK (proj 512)", "dattri", "dattri_if.py", ["trak"]),
    ("traker TRAK (proj min(512, n/2))", "traker", "traker_trak.py", []),
    ("captum TracInCP", "captum", "captum_tracin.py", []),
    ("pyDVL DirectInfluence", "pydvl", "pydvl_if.py", []),
]


def preload_torch_func() -> None:
    """torch.func imports torch._dynamo on first use (about 3 s): import it before any clock starts, as the reference
    runners import their libraries before theirs."""
    importlib.import_module("torch._dynamo")


def prepare(path: Path, n_subsets: int = 100, n_lds: int = 200) -> dict[str, float]:
    """Write the shared data file; returns seconds of one full-data training per model kind."""
    split = digits.load_digits_split()
    data: dict[str, torch.Tensor] = dict(split)
    data["x_lds"], data["y_lds"] = split["x_test"][:n_lds], split["y_test"][:n_lds]
    n = len(split["x_train"])
    rng = np.random.default_rng(1)
    subsets = np.stack([np.sort(rng.choice(n, n // 2, replace=False)) for _ in range(n_subsets)])
    data["subsets"] = torch.from_numpy(subsets)
    train_seconds: dict[str, float] = {}
    for kind in digits.MODEL_KINDS:
        started = time.perf_counter()
        full = digits.train(kind, split["x_train"], split["y_train"])
        train_seconds[kind] = time.perf_counter() - started
        data[f"state_{kind}"] = full.state_dict()
        losses = []
        for s in subsets:
            model = digits.train(kind, split["x_train"][s], split["y_train"][s])
            with torch.no_grad():
                losses.append(digits.per_example_loss(model(data["x_lds"]), data["y_lds"]).numpy())
        data[f"gt_{kind}"] = torch.from_numpy(np.stack(losses))
    torch.save(data, path)
    (path.parent / "train_seconds.json").write_text(json.dumps(train_seconds))
    return train_seconds


def lds(scores: np.ndarray, subsets: np.ndarray, losses: np.ndarray) -> float:
    summed = np.stack([scores[:, s].sum(axis=1) for s in subsets])
    corr = [spearmanr(summed[:, j], -losses[:, j]).statistic for j in range(scores.shape[0])]
    return float(np.nanmean(corr))


def ours(data: dict[str, torch.Tensor], kind: str, **options: object) -> tuple[np.ndarray, float]:
    model = digits.make_model(kind)
    model.load_state_dict(data[f"state_{kind}"])
    started = time.perf_counter()
    index = GradientIndex.build(model, digits.per_example_loss, data["x_train"], data["y_train"], **options)
    scores = index.scores(data["x_lds"], data["y_lds"])
    return scores, time.perf_counter() - started


def reference(
    label: str, env: str, runner: str, extra: list[str], data_path: Path, kind: str
) -> tuple[np.ndarray | None, float, str]:
    ok, info = ensure_env(env, log=OUT / "envs.log")
    if not ok:
        return None, float("nan"), info
    prefix = OUT / f"{env}_{runner.removesuffix('.py')}_{'_'.join(extra) or 'default'}_{kind}"
    try:
        proc = subprocess.run(
            [str(env_python(env)), str(RUNNERS / runner), str(data_path), kind, str(prefix), *extra],
            capture_output=True,
            text=True,
            timeout=900,
            cwd=RUNNERS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, float("nan"), "timed out after 900 s"
    if proc.returncode != 0:
        last = [line for line in proc.stderr.strip().splitlines() if line.strip()][-1:] or ["no output"]
        (prefix.parent / (prefix.name + ".stderr")).write_text(proc.stderr)
        return None, float("nan"), f"failed: {last[0][:160]}"
    seconds = json.loads(Path(str(prefix) + ".json").read_text())["seconds"]
    return np.load(str(prefix) + ".npy"), seconds, info


def main() -> None:
    torch.set_num_threads(1)
    preload_torch_func()
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"machine: {digits.machine()}")
    data_path = OUT / "digits_lds.pt"
    if not data_path.exists():
        started = time.perf_counter()
        prepare(data_path)
        print(f"ground truth: 2 x 100 retrained models in {time.perf_counter() - started:.1f} s")
    data = torch.load(data_path, weights_only=True)
    subsets = data["subsets"].numpy()
    # Both digits models are below IDENTITY_MAX_PARAMS, so projection="auto" would not project: force a projection.
    projected = {"projection": "rademacher"}
    grid: list[dict[str, object]] = [{"proj_dim": d, "damping": 1.0, **projected} for d in (256, 1024)]
    grid += [{"proj_dim": d, "damping": 0.1, "hessian": "fisher", **projected} for d in (256, 1024, 2048)]
    # No projection: the raw per-example gradients (what projection="auto" picks for <= 4096 parameters).
    grid += [{"projection": "none", "damping": d, "hessian": "fisher"} for d in (0.1, 0.3, 1.0, 3.0)]
    # The exact Hessian (what hessian="auto" picks without projection); damping 1.0 is the platform's setting.
    grid += [{"projection": "none", "damping": d, "hessian": "exact"} for d in (0.1, 0.3, 1.0, 3.0)]
    # --ours: only our method; the reference rows are reused from the last full run's lds.json.
    only_ours = "--ours" in sys.argv
    stored = json.loads((OUT / "lds.json").read_text()) if only_ours and (OUT / "lds.json").exists() else []
    rows: list[dict[str, object]] = []
    for kind in digits.MODEL_KINDS:
        gt = data[f"gt_{kind}"].numpy()
        params = sum(p.numel() for p in digits.make_model(kind).parameters())
        for options in grid:
            scores, seconds = ours(data, kind, **options)
            proj = "no proj" if options.get("projection") == "none" else f"proj {options['proj_dim']}"
            label = f"ours {options.get('hessian', 'empirical')} {proj} damping {options['damping']}"
            if options.get("hessian") == "exact" and options["damping"] == 1.0:
                label += " (hessian='auto', the platform's setting)"
            rows.append(
                {
                    "model": kind,
                    "method": label,
                    "lds": lds(scores, subsets, gt),
                    "seconds": seconds,
                    "note": f"{params} params",
                }
            )
        if only_ours:
            rows += [
                {**r, "note": r["note"] if str(r["note"]).startswith("stored") else f"stored: {r['note']}"}
                for r in stored
                if r["model"] == kind and not str(r["method"]).startswith("ours")
            ]
            continue
        for label, env, runner, extra in REFERENCES:
            scores_ref, seconds, info = reference(label, env, runner, extra, data_path, kind)
            value = lds(scores_ref, subsets, gt) if scores_ref is not None else float("nan")
            rows.append({"model": kind, "method": label, "lds": value, "seconds": seconds, "note": info})
    (OUT / "lds.json").write_text(json.dumps(rows, indent=1))
    print_table(rows)


def print_table(rows: list[dict[str, object]], kinds: tuple[str, ...] = digits.MODEL_KINDS) -> None:
    print("\n| model | method | LDS | wall s | LDS / best reference | time / best reference's | note |")
    print("|---|---|---:|---:|---:|---:|---|")
    for kind in kinds:
        mine = [r for r in rows if r["model"] == kind]
        refs = [r for r in mine if not str(r["method"]).startswith("ours") and np.isfinite(float(r["lds"]))]
        best = max(refs, key=lambda r: float(r["lds"])) if refs else None
        for r in mine:
            lds_ratio = float(r["lds"]) / float(best["lds"]) if best else float("nan")
            t_ratio = float(r["seconds"]) / float(best["seconds"]) if best else float("nan")
            print(
                f"| {kind} | {r['method']} | {float(r['lds']):.3f} | {float(r['seconds']):.2f} | {lds_ratio:.2f} | "
                f"{t_ratio:.3f} | {r['note']} |"
            )


if __name__ == "__main__":
    main()
