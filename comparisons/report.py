"""An evaluation as a reader sees it: a terminal table that fits 100 columns, and Markdown (what the
README's evaluation figures are generated from, see scripts/readme_eval.py). Every number has its
chance level and its 95 % interval beside it; everything else is in the JSON and CSV."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from comparisons.evaluate import SCOPES, Evaluation
from comparisons.metrics import metric_names
from comparisons.robustness import NOTE as ROBUSTNESS_NOTE
from comparisons.robustness import Drop
from comparisons.robustness import sentence as drop_sentence
from comparisons.statistics import DRAWS, MOMENT
from tagging.tag_store import TagStore
from tagging.taggers import services

WIDTH = 100
SHORT = {"mrr": "MRR", "map": "mAP", MOMENT: "R1@.5"}


def short(metric: str) -> str:
    """A metric's column title: hit@5, R@5 (recall), MRR, mAP, R1@.5."""
    return SHORT.get(metric, metric.replace("recall@", "R@"))


def _wrap(text: str, indent: str = "") -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent + "  ") or [""]


def _interval(low: float, high: float) -> str:
    """'.02-.19' (seven characters at most, so a column of eight keeps a space)."""

    def num(x: float) -> str:
        return "1" if x >= 0.995 else f"{x:.2f}"[1:]

    return f"{num(low)}-{num(high)}"


def text_lines(ev: Evaluation) -> list[str]:
    """The per-engine table (a value line and a 95 % interval line per engine), chance, notes, tests."""
    cols = metric_names(ev.ks)
    if 21 + 8 * len(cols) > WIDTH:  # many cut-offs: recall@k stays in --json/--csv
        cols = [c for c in cols if not c.startswith("recall@")]
    out = [
        f"each query searched {SCOPES[ev.scope]}; tolerance {ev.tolerance:g} s; n = queries with an answer",
        "ties: a query whose top frames tie scores the mean over random tie orders",
        f"{'engine':16s} {'n':>3s} " + "".join(f"{short(c):>8s}" for c in cols),
    ]
    for row in ev.table():
        if row["status"] != "ok":
            out += _wrap(f"{row['engine']}: skipped: {row['reason']}")
            continue
        cells = ["     --" if row[c] is None else f"{row[c]:.3f}" for c in cols]
        out.append(f"{row['engine']:16s} {row['queries']:3d} " + "".join(f"{c:>8s}" for c in cells))
        if f"{cols[0]}_ci_low" in row:
            spans = [_interval(row[f"{c}_ci_low"], row[f"{c}_ci_high"]) if f"{c}_ci_low" in row else "" for c in cols]
            out.append(f"{'  95 % interval':20s} " + "".join(f"{s:>8s}" for s in spans))
        if not row.get("baseline") and row.get(f"{MOMENT}_chance") is not None:
            out.append(f"{'  chance':20s} " + "".join(f"{row.get(c + '_chance', 0):8.3f}" for c in cols))
        if row["tied"]:
            out += _wrap(f"ties in {row['tied']} of {row['queries']} queries (scored over tie orders)", "  ")
        if row["notes"]:
            out += _wrap(f"note: {row['notes']}", "  ")
    out += _wrap(
        f"random = chance: each metric's expected value under random ranking ({DRAWS} draws per query, the "
        f"engines' spacing of hits); {short(MOMENT)} chance is each engine's own (its top moment placed at "
        "random), on its 'chance' line"
    )
    out += [line for c in ev.comparisons for line in _wrap(c["sentence"])]
    if ev.verdict:
        out += _wrap(f"verdict: {ev.verdict}")
    return out


def robustness_lines(drops: Sequence[Drop]) -> list[str]:
    """Each engine's drop under each perturbation, with its test, and the note on character edits."""
    if not drops:
        return ["robustness: no engine ran on at least two perturbed queries"]
    metric = short(drops[0].metric)
    out = [
        f"robustness: {metric} on clean vs perturbed queries (paired test, Holm over all rows)",
        f"{'engine':16s} {'perturbation':20s} {'n':>3s} {'clean':>7s} {'perturbed':>9s} {'drop':>7s} {'p (Holm)':>9s}",
    ]
    for d in drops:
        out.append(
            f"{d.engine:16s} {d.perturbation:20s} {d.queries:3d} {d.clean:7.3f} {d.perturbed:9.3f} "
            f"{d.drop:7.3f} {d.p_holm:9.3g}{' *' if d.significant else ''}"
        )
    return [*out, *_wrap(ROBUSTNESS_NOTE)]


def tagging_state(library, films: Sequence) -> dict[str, str]:
    """Per tagging service, which of ``films`` it had tagged (so a reader knows what tag engines saw)."""
    store = TagStore(library, readonly=True)
    try:
        counts = {s: {f.name: len(store.tags(f, s)) for f in films} for s in services()}
    finally:
        store.close()
    out = {}
    for service, frames in counts.items():
        done = [name for name, n in frames.items() if n]
        if not done:
            out[service] = "no film tagged"
        elif len(done) == len(frames):
            out[service] = f"all {len(done)} films tagged ({sum(frames.values())} frames)"
        else:
            out[service] = f"{len(done)} of {len(frames)} films tagged ({', '.join(done)})"
    return out


def markdown(ev: Evaluation, drops: Sequence[Drop] | None = None, tagged: dict[str, str] | None = None) -> str:
    """The evaluation as Markdown: per-engine table with 95 % intervals and chance, tests, robustness.

    ``tagged`` maps each tagging service to what it had tagged when the evaluation ran."""
    cols = metric_names(ev.ks)
    lines = [
        f"Each query searched {SCOPES[ev.scope]} (`--scope {ev.scope}`), tolerance {ev.tolerance:g} s; "
        "tie-aware (a query whose top frames tie scores the mean over random tie orders). Cells: mean "
        "[95 % interval] (Clopper–Pearson for Hit@k and R1@IoU, bootstrap otherwise).",
        "",
    ]
    for service, what in (tagged or {}).items():
        lines.append(f"- `tags:{service}`: {what}")
    if tagged:
        lines.append("")
    lines.append("| engine | n | " + " | ".join(short(c) for c in cols) + " |")
    lines.append("|---|---|" + "---|" * len(cols))
    for row in ev.table():
        if row["status"] != "ok":
            lines.append(f"| {row['engine']} | skipped: {row['reason']} |" + " |" * (len(cols) - 1))
            continue
        cells = []
        for c in cols:
            if row[c] is None:
                cells.append("(per engine)")
                continue
            cell = f"{row[c]:.3f}"
            if c + "_ci_low" in row:
                cell += f" [{row[c + '_ci_low']:.2f}, {row[c + '_ci_high']:.2f}]"
            if c == MOMENT and not row.get("baseline"):
                cell += f" (chance {row[c + '_chance']:.3f})"
            cells.append(cell)
        name = f"{row['engine']} (chance)" if row.get("baseline") else row["engine"]
        lines.append(f"| {name} | {row['queries']} | " + " | ".join(cells) + " |")
    lines += ["", *(f"- {c['sentence']}" for c in ev.comparisons)]
    if ev.verdict:
        lines += ["", f"**Verdict.** {ev.verdict}"]
    if drops:
        metric = short(drops[0].metric)
        lines += [
            "",
            f"Robustness ({metric}, clean → perturbed on the same queries, paired test, Holm over all rows):",
            "",
            "| engine | perturbation | n | clean | perturbed | drop | p (Holm) |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {d.engine} | {d.perturbation} | {d.queries} | {d.clean:.3f} | {d.perturbed:.3f} | "
            f"{d.drop:+.3f} | {d.p_holm:.3g}{' *' if d.significant else ''} |"
            for d in drops
        ]
        lines += ["", f"{ROBUSTNESS_NOTE} `*`: significant at 0.05 after Holm.", ""]
        lines += [f"- {drop_sentence(d)}" for d in drops if d.significant]
    return "\n".join(lines).rstrip() + "\n"
