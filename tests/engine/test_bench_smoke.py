"""The benchmark runner works end to end (figures are never asserted: timing is noisy)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_quick_startup_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--only", "startup",
         "--rounds", "1", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(out.read_text())
    assert {"schema", "quick", "machine", "results", "benchmarks"} <= set(data)
    assert data["benchmarks"] == ["startup"]
    assert {"cpu", "cores", "python"} <= set(data["machine"])
    rows = data["results"]
    assert rows and all(r["bench"] == "startup" for r in rows)
    for row in rows:
        assert {"metric", "value", "unit", "baseline", "ratio", "target", "ok"} <= set(row)
    metrics = {r["metric"] for r in rows}
    assert "run of a two-action pipeline" in metrics
    textual = next(r for r in rows if r["metric"] == "headless commands import textual")
    assert textual["value"] == 0, textual  # a fact, not a timing: headless never loads textual
    assert "run of a two-action pipeline" in proc.stdout  # the table was printed
