"""The speed benchmarks run end to end on a small shape and print medians with their spread (the README's figures
come from their full-size output)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from .conftest import ROOT


def run_script(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_overhead_prints_every_asked_row_with_its_per_round_spread():
    text = run_script(
        "overhead.py", "--hidden", "64", "--steps", "1", "--rounds", "2", "--threads", "1",
        "--methods", "movement", "soft_movement", "--granularities", "weight",
    )  # fmt: skip
    rows = re.findall(
        r"^(\w+)\s+weight\s+(\d+)\s+(warm|fresh)\s+\d+\s+([\d.]+)\s+([\d.]+)-([\d.]+)$", text, re.M
    )
    assert {(m, e, k) for m, e, k, *_ in rows} == {
        ("movement", "10", "warm"),
        ("soft_movement", "10", "warm"),
        ("movement", "1", "warm"),
        ("movement", "1", "fresh"),
        ("magnitude", "1", "warm"),
        ("magnitude", "1", "fresh"),
    }
    for *_, ratio, low, high in rows:
        assert float(low) <= float(high) and float(ratio) > 0
    assert re.search(r"dense step \d+ ms \(rounds within [\d.]+%\)", text)


def test_step_profile_times_every_phase_under_both_malloc_settings():
    text = run_script(
        "step_profile.py", "--hidden", "64", "--steps", "1", "--rounds", "2", "--threads", "1",
        "--methods", "soft_movement", "l0", "--malloc", "both",
    )  # fmt: skip
    number = r"\s+([\d.]+)"
    tables = re.findall(
        r"^malloc: (.+); peak resident memory (\d+) MB \(median over processes\)$", text, re.M
    )
    assert [t[0] for t in tables] == [
        "glibc as it starts",
        "freed memory retained (bermo-prune's training processes)",
    ]
    assert all(int(mb) > 50 for _, mb in tables)  # a torch process with a model: tens of MB at least
    for name in ("dense", "soft_movement", "l0"):
        rows = re.findall(rf"^{name}{number * 7}$", text, re.M)
        assert len(rows) == 2, text  # one per setting
        for *phases, step, _ratio in rows:
            assert float(step) == pytest.approx(sum(map(float, phases)), abs=0.3)  # medians of sums, near
        (ratio,) = re.findall(rf"^{name}\s+([\d.]+)\s+\(([\d.]+)-([\d.]+)\)$", text, re.M)
        assert float(ratio[1]) <= float(ratio[2])
    penalty = re.findall(rf"^l0{number * 7}$", text, re.M)[0][1]
    assert float(penalty) > 0  # L0 has a penalty phase; dense has none
    assert re.findall(rf"^dense{number * 7}$", text, re.M)[0][1] == "0.0"


def test_speedup_prints_the_median_ratio_and_its_spread():
    text = run_script(
        "speedup.py", "--layers", "1", "--hidden", "128", "--sparsities", "0.5", "--batches", "1",
        "--lengths", "16", "--rounds", "2", "--threads", "1", "--profile",
    )  # fmt: skip
    (row,) = re.findall(r"^\s+1\s+16\s+[\d.]+\s+[\d.]+ \(([\d.]+)x, ([\d.]+)-([\d.]+)\)$", text, re.M)
    assert float(row[1]) <= float(row[2]) and float(row[0]) > 0
    profiles = re.findall(
        r"profile, (\d+)% removed: shrinking ops ([\d.]+) ms \(dense / this ([\d.]+)x\), fixed ops ([\d.]+) ms \((.+)\)$",
        text,
        re.M,
    )
    assert [p[0] for p in profiles] == ["0", "50"], text  # one per model: dense first
    assert float(profiles[0][2]) == 1.0 and all(float(p[1]) > 0 and float(p[3]) > 0 for p in profiles)
    # the largest fixed ops, named with their times (which ones lead at this tiny shape is timing noise: layer norm,
    # index_select, gather...), none of them an op that shrinks
    named = re.findall(r"(\w+) ([\d.]+)", profiles[0][4])
    assert 1 <= len(named) <= 4, profiles[0][4]
    assert not any(
        k in name for name, _ in named for k in ("mm", "linear", "softmax", "gelu", "scaled_dot")
    ), named


def test_every_benchmark_script_imports(monkeypatch):
    """A script's imports and definitions load (a name moved out of the package fails here, not in a user's hands);
    none runs its main at import. Scripts import their siblings, as when run from the command line."""
    import runpy

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        runpy.run_path(str(path), run_name="benchmark_import_check")
