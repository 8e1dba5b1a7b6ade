"""Create one isolated virtual environment per reference library under benchmarks/.envs/<name>.

Each reference gets its own environment (no system site-packages) because their pins conflict: pydvl needs numpy<2,
and some pull another torch. `torch==2.13.0` resolves to the CPU wheel on local disk for Python 3.11.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ENVS_DIR = Path(__file__).resolve().parents[1] / ".envs"

REFERENCES: dict[str, list[str]] = {
    "dattri": ["torch==2.13.0", "dattri", "scipy"],
    "traker": ["torch==2.13.0", "traker", "scipy"],
    "captum": ["torch==2.13.0", "captum", "scipy"],
    "pydvl": ["torch==2.13.0", "pydvl[influence]", "numpy<2", "scipy", "scikit-learn"],
}


def env_python(name: str) -> Path:
    return ENVS_DIR / name / "bin" / "python"


def ensure_env(name: str, log: Path | None = None) -> tuple[bool, str]:
    """Create the environment if missing; return (ok, reason_or_versions)."""
    python = env_python(name)
    marker = ENVS_DIR / name / ".installed.json"
    if marker.exists():
        return True, json.loads(marker.read_text())["versions"]
    ENVS_DIR.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", sys.executable)
    out = open(log, "a") if log else subprocess.DEVNULL
    try:
        subprocess.run([base, "-m", "venv", "--clear", str(ENVS_DIR / name)], check=True, stdout=out, stderr=out)
        started = time.time()
        proc = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *REFERENCES[name]], stdout=out, stderr=out, timeout=1500
        )
        if proc.returncode != 0:
            return False, f"pip install {' '.join(REFERENCES[name])} failed (exit {proc.returncode}); see {log}"
        versions = subprocess.run(
            [str(python), "-m", "pip", "freeze"], capture_output=True, text=True, check=True
        ).stdout
        keep = [
            line for line in versions.splitlines() if line.split("==")[0].lower() in {name, "torch", "numpy", "pydvl"}
        ]
        summary = ", ".join(keep)
        marker.write_text(json.dumps({"versions": summary, "seconds": round(time.time() - started, 1)}))
        return True, summary
    except (subprocess.SubprocessError, OSError) as exc:
        return False, f"could not create the environment: {exc}"
    finally:
        if log:
            out.close()  # type: ignore[union-attr]


if __name__ == "__main__":
    names = sys.argv[1:] or list(REFERENCES)
    log_path = Path(__file__).resolve().parents[1] / "out" / "envs.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    for env_name in names:
        ok, info = ensure_env(env_name, log=log_path)
        print(f"{env_name}: {'ok' if ok else 'FAILED'} {info}", flush=True)
