"""The report's opening answer: the study's questions answered in a few lines, each from the section that holds its
numbers and rule (nothing here is computed a second way, and nothing is typed in by hand).

1. Does a pruned model end at the majority class? Per model and undistilled pruned series: the units (seeds) that
   ended at chance (claim 1's primary outcome, :func:`.verdicts.units`), naming their seeds, and those at chance at
   some evaluation after pruning started (the secondary outcome).
2. Do the control arms behave like BERT or like BERMo? The reading of :func:`.arms.place` per arm and series.
3. Are the pruned models above the bag-of-words line, and how far below dense? Per (model, series, level): the
   median final accuracy of the runs that did not end at chance, its margin over the bag-of-words line against two
   binomial standard errors of an accuracy on the dev set, and its distance from the same model's dense median.
4. What remains of the paper's claims: each claim's verdict as the claims section states it.
"""

from __future__ import annotations

import re

from .arms import extra_arms, place, placements
from .stats import median_range
from .verdicts import Study, binomial_se, learned_finals, model_order, name, of, units

#: a claim's paragraph in the claims section ("1. *BERMo prunes ...") and how its verdict is written there (the
#: bold phrase after "Verdict:", or the paragraph's last bold phrase where it has no "Verdict:")
CLAIM = re.compile(r"^([123])\. \*")
VERDICT = re.compile(
    r"Verdict: \*\*([^*]+)\*\*((?:[^.]|\.(?=\S))*)"
)  # the tail ends at a full stop and a space
BOLD = re.compile(r"\*\*([^*]+)\*\*")
#: the claims' short names, in the claims section's order
CLAIMS = (
    "prunes stably where BERT diverges (claim 1)",
    "converges faster (claim 2)",
    "is more parameter-efficient under penalty-based pruning (claim 3)",
)


def _seeds(seeds: list[int]) -> str:
    seeds = sorted(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"seeds {seeds[0]}-{seeds[-1]}"
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds))


def _divergence(rows: list[dict], study: Study, models: list[str]) -> list[str]:
    out = []
    for model in models:
        us = units(rows, study, model, "undistilled")
        parts = []
        for series in sorted({s for s, _ in us}):
            mine = {k: v for k, v in us.items() if k[0] == series}
            ended = [seed for (_, seed), os in mine.items() if any(o.ended for o in os)]
            after = [seed for (_, seed), os in mine.items() if any(o.after for o in os)]
            parts.append(
                f"{series}, {_seeds([seed for _, seed in mine])}: ended at chance in {of(len(ended), len(mine))}"
                + (f" ({_seeds(ended)})" if ended else "")
                + ", at chance after pruning started in "
                + (f"{len(after)} ({_seeds(after)})" if after else "none")
            )
        if parts:
            out.append(f"   - {name(model)}: " + "; ".join(parts) + ".")
    return out


#: a cell needs this many runs to be ranked as a model's best pruned cell in "The answer, plainly"
MIN_RANKED_RUNS = 3


def _se(study: Study) -> float | None:
    """One binomial standard error of an accuracy at the bag-of-words line on the dev set (None: no line)."""
    bow, dev = study.bag_of_words(), study.dev_size()
    return binomial_se(max(bow), dev) if bow and dev else None


def _accuracy(rows: list[dict], study: Study, models: list[str]) -> list[str]:
    bow = study.bag_of_words()
    line = max(bow) if bow else None
    se = _se(study)
    ok = [r for r in rows if r["status"] != "failed" and not r.get("teacher")]
    out = []
    for model in models:
        dense = learned_finals([r for r in ok if r["model"] == model and r["method"] == "none"], study)
        dense_median = median_range(dense).mean if dense else None
        cells = sorted(
            {(r["method"], r["target"]) for r in ok if r["model"] == model and r["method"] != "none"},
            key=lambda c: (c[0], -(c[1] or 0)),
        )
        medians, chance, n_runs = {}, [], {}
        for method, target in cells:
            runs = [r for r in ok if (r["model"], r["method"], r["target"]) == (model, method, target)]
            n_runs[(method, target)] = len(runs)
            kept = learned_finals(runs, study)
            if kept:
                medians[(method, target)] = median_range(kept).mean
            else:
                chance.append(f"{method} {target:g}")
        if not cells:
            continue
        parts = [f"{len(cells)} pruned cell{'s' if len(cells) > 1 else ''}"]
        if line is not None and medians:
            margins = {c: m - line for c, m in medians.items()}
            tol = 2 * se if se is not None else 0.0
            above = sum(v >= tol for v in margins.values())
            below = sum(v <= -tol for v in margins.values())
            near = len(margins) - above - below
            parts.append(
                f"above the line by 2 SE or more: {above}; within 2 SE of it: {near}; below it by 2 SE or more: {below}"
                if se is not None
                else f"above the line: {sum(v > 0 for v in margins.values())} of {len(margins)}"
            )
        if chance:
            parts.append(f"every run at chance: {len(chance)} ({', '.join(chance)})")
        if medians:
            # a cell of one or two runs is shown but not ranked: its median is one run's draw (a sweep still running,
            # or an exploratory arm), and ranking it would set it against cells of many seeds
            ranked = {c: m for c, m in medians.items() if n_runs[c] >= MIN_RANKED_RUNS}
            fallback = not ranked  # no cell has enough runs: rank them all, and say so
            ranked = ranked or medians
            few = [c for c in medians if c not in ranked]
            (method, target), best = max(ranked.items(), key=lambda kv: kv[1])
            text = f"best {method} {target:g}, {best:.4f}"
            if fallback:
                text += f" (every cell has fewer than {MIN_RANKED_RUNS} runs)"
            if line is not None:
                text += f" ({best - line:+.4f} against the line)"
            if dense_median is not None:
                gaps = [m - dense_median for m in ranked.values()]
                text += (
                    f"; against its dense median ({dense_median:.4f}): {best - dense_median:+.4f} for the best, "
                    f"{min(gaps):+.4f} to {max(gaps):+.4f} over the {'ranked ' if few else ''}cells"
                )
            else:
                text += "; no dense run yet"
            if few:
                text += f"; not ranked (fewer than {MIN_RANKED_RUNS} runs): " + ", ".join(
                    f"{m} {t:g} ({n_runs[(m, t)]} run{'s' if n_runs[(m, t)] > 1 else ''}, median {medians[(m, t)]:.4f})"
                    for m, t in few
                )
            parts.append(text)
        out.append(f"   - {name(model)}: " + "; ".join(parts) + ".")
    return out


def plain_answer(
    rows: list[dict], study: Study, claim_lines: list[str], unfinished: bool, stopped: str = ""
) -> list[str]:
    """The "The answer, plainly" section (empty for a sweep without pruned runs); ``stopped``: where runs stopped
    early (:func:`.verdicts.stopped_at`), if they did."""
    ok = [r for r in rows if r["status"] != "failed"]
    if not any(r["method"] != "none" for r in ok):
        return []
    models = model_order({r["model"] for r in ok})
    out = [
        "## The answer, plainly",
        "",
        "For this encoder, task and schedule only; each line is read from the section that gives its numbers and "
        "rule"
        + (
            " (from the runs there are: the sweep is unfinished, and any line may change)."
            if unfinished
            else "."
        )
        + (
            f" The runs stopped early ({stopped}): lines 1 and {3 if extra_arms(rows) else 2} describe the models "
            "where they stopped, not finished pruned models."
            if stopped
            else ""
        ),
        "",
        "1. **Does a pruned model end at the majority class?** Units (seeds) that ended at chance, per undistilled "
        "series (section 2):",
        *_divergence(rows, study, models),
    ]
    arms = extra_arms(rows)
    if arms:
        found = placements(rows, study)
        readings = [
            f"`{p.arm}` under {p.series}: **{p.reading}** ({place(p.pair, p.vs_bert, p.vs_bermo)[1]})"
            for p in found
        ]
        out.append(
            f"2. **Do the control arms ({', '.join(f'`{a}`' for a in arms)}) behave like BERT or like BERMo?** "
            + ("; ".join(readings) if readings else "no undistilled pruned runs to place")
            + " (section Control arms, with its rule)."
        )
    bow = study.bag_of_words()
    out += [
        f"{3 if arms else 2}. **Are the pruned models above the bag-of-words line"
        + (f" ({max(bow):.4f})" if bow else "")
        + ", and how far below dense?** Each undistilled pruned cell (series, level) by the median final accuracy "
        "of its runs not at chance (section 1), against the line and the same model's dense median. *Within 2 SE*: "
        "the margin is smaller than two binomial standard errors of an accuracy on this dev set"
        + (f" ({_se(study):.4f} each)" if _se(study) else "")
        + ", which the median's own interval leaves out: on another sample of sentences such a cell's sign could "
        "reverse (not evidence of equality; the findings pair runs with the bag of words on the same sentences "
        "where the rows keep their predictions).",
        *_accuracy(rows, study, models),
    ]
    verdicts = []
    for line in claim_lines:
        if CLAIM.match(line):
            found = VERDICT.search(line)
            if found:  # the verdict with its qualifier, as the claim states it ("... at this level")
                verdicts.append(f"**{found.group(1)}**{found.group(2).rstrip()}")
                continue
            found = ([*BOLD.finditer(line)] or [None])[-1]
            verdicts.append(f"**{found.group(1)}**" if found else "no verdict")
    if len(verdicts) == len(CLAIMS):
        out.append(
            f"{4 if arms else 3}. **What remains of the paper's claims?** BERMo "
            + "; ".join(f"{c}: {v}" for c, v in zip(CLAIMS, verdicts, strict=True))
            + " (section: the paper's claims, one by one)."
        )
    out.append("")
    return out


__all__ = ["plain_answer"]
