"""Bakery's benchmarks: `python bench/run.py` (about 10 minutes), `--quick` (about 2).

Every figure is printed beside a baseline measured in the same run (the machines here are
shared and noisy: compare ratios), as the median of several rounds. The figures also go to
bench/results/latest.json (git-ignored); the committed ones live in bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Row  # noqa: E402
from bench.suites import ALL, Config  # noqa: E402


def machine() -> dict[str, object]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    mem = 0
    with contextlib.suppress(ValueError, OSError):
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    import sqlite3

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_mb": mem,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "load_before": [round(x, 2) for x in load],
    }


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit in ("s",):
        return f"{value:.3f} s"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "us":
        return f"{value:.2f} us"
    if unit == "MB":
        return f"{value:.0f} MB"
    if unit == "lines/s":
        return f"{value:,.0f}/s"
    return f"{value:g} {unit}".strip()


def table(rows: list[Row]) -> str:
    head = ("benchmark", "figure", "value", "baseline (same run)", "ratio", "target", "")
    body = []
    for r in rows:
        j = r.to_json()
        base = f"{fmt(r.baseline, r.unit)} {r.baseline_label}".strip() if r.baseline is not None else r.baseline_label
        verdict = "" if r.ok is None else ("ok" if r.ok else "MISS")
        body.append((
            r.bench, r.metric, fmt(r.value, r.unit) if r.value is not None else (r.note or "n/a"),
            base, f"{j['ratio']:.1f}x" if j["ratio"] is not None else "", r.target, verdict,
        ))
    widths = [min(60, max(len(str(x[i])) for x in [head, *body])) for i in range(len(head))]
    lines = ["  ".join(str(c)[:w].ljust(w) for c, w in zip(head, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row, r in zip(body, rows, strict=True):
        lines.append("  ".join(str(c)[:w].ljust(w) for c, w in zip(row, widths, strict=True)))
        if r.note and r.value is not None:
            lines.append(" " * (widths[0] + 2) + "  " + r.note)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs, fewer rounds (~2 min)")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(ALL)}")
    parser.add_argument("--rounds", type=int, help="rounds per figure (median is kept)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.json"),
                        help="where to write the JSON figures")
    args = parser.parse_args(argv)
    names = list(ALL) if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in ALL]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(ALL)}")
    cfg = Config(args.quick, args.rounds)
    info = machine()
    started = time.time()
    rows: list[Row] = []
    durations: dict[str, float] = {}
    for name in names:
        t0 = time.perf_counter()
        print(f"... {name}", file=sys.stderr, flush=True)
        try:
            rows.extend(ALL[name](cfg))
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the rest
            traceback.print_exc()
            rows.append(Row(name, name, None, "", note=f"error: {type(exc).__name__}: {str(exc)[:200]}"))
        durations[name] = round(time.perf_counter() - t0, 1)
    print(table(rows))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        load_after = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load_after = []
    payload = {
        "schema": 1,
        "quick": args.quick,
        "rounds": cfg.rounds,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "machine": {**info, "load_after": load_after},
        "benchmarks": names,
        "durations": durations,
        "results": [r.to_json() for r in rows],
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nfigures written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
