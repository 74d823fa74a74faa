"""``summary.html``: the cohort at a glance, as pictures where a reader would rather look than read.

Every task shows how many studies were done, refused or failed; ``cobb`` the distribution of the
largest Cobb angle and the severities; ``fracture`` the calls per level and the probabilities;
``centra`` the centrum HU by level (box plots with Pickhardt's 110 and 160 HU bands) and the density
hints. The charts are inline SVG drawn here: one self-contained file, no plotting library.
"""
from __future__ import annotations

import html
from collections import Counter
from pathlib import Path

from ..io.atomic import atomic_output

_W, _H, _PAD = 560, 240, 40
_BAR = "#4a7fb5"


def _frame(title: str, body: str) -> str:
    return (f'<figure><figcaption>{html.escape(title)}</figcaption><svg width="{_W}" height="{_H + 30}" '
            f'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="11">'
            f'<line x1="{_PAD}" y1="{_H}" x2="{_W - 10}" y2="{_H}" stroke="#444"/>{body}</svg></figure>')


def bar_chart(title: str, counts: dict[str, float]) -> str:
    """One bar per key, labelled under it, its value above it."""
    if not counts:
        return ""
    top = max(counts.values()) or 1
    step = (_W - _PAD - 10) / len(counts)
    parts = []
    for k, (label, value) in enumerate(counts.items()):
        height = (_H - 30) * value / top
        x = _PAD + k * step
        parts.append(f'<rect x="{x + step * 0.1:.1f}" y="{_H - height:.1f}" width="{step * 0.8:.1f}" '
                     f'height="{height:.1f}" fill="{_BAR}"/><text x="{x + step / 2:.1f}" y="{_H - height - 3:.1f}" '
                     f'text-anchor="middle">{value:g}</text><text x="{x + step / 2:.1f}" y="{_H + 14}" '
                     f'text-anchor="middle">{html.escape(str(label)[:14])}</text>')
    return _frame(title, "".join(parts))


def histogram(title: str, values: list[float], width: float, unit: str) -> str:
    """Counts of ``values`` in bins ``width`` wide, each bar labelled by its lower edge."""
    values = [v for v in values if v is not None]
    if not values:
        return ""
    low = width * (min(values) // width)
    bins = Counter(int((v - low) // width) for v in values)
    return bar_chart(title, {f"{low + k * width:g}{unit}": bins.get(k, 0) for k in range(max(bins) + 1)})


def _quartiles(values: list[float]) -> tuple[float, ...]:
    ordered = sorted(values)

    def at(q):
        position = q * (len(ordered) - 1)
        below = int(position)
        above = min(below + 1, len(ordered) - 1)
        return ordered[below] + (ordered[above] - ordered[below]) * (position - below)

    return tuple(at(q) for q in (0, 0.25, 0.5, 0.75, 1))


def box_plot(title: str, groups: dict[str, list[float]], bands=()) -> str:
    """Per group the range, quartiles and median; dashed lines at ``bands`` (values on the same axis)."""
    groups = {k: v for k, v in groups.items() if v}
    if not groups:
        return ""
    everything = [v for values in groups.values() for v in values] + list(bands)
    low, high = min(everything), max(everything)
    span = (high - low) or 1

    def y(value):
        return _H - 10 - (_H - 30) * (value - low) / span

    step = (_W - _PAD - 10) / len(groups)
    parts = [f'<line x1="{_PAD}" x2="{_W - 10}" y1="{y(b):.1f}" y2="{y(b):.1f}" stroke="#c33" stroke-dasharray="4"/>'
             f'<text x="{_PAD - 4}" y="{y(b) + 4:.1f}" text-anchor="end">{b:g}</text>' for b in bands]
    for k, (label, values) in enumerate(groups.items()):
        lo, q1, median, q3, hi = _quartiles(values)
        x = _PAD + k * step + step / 2
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y(lo):.1f}" y2="{y(hi):.1f}" stroke="#444"/>'
                     f'<rect x="{x - step * 0.3:.1f}" y="{y(q3):.1f}" width="{step * 0.6:.1f}" '
                     f'height="{max(y(q1) - y(q3), 1):.1f}" fill="{_BAR}"/><line x1="{x - step * 0.3:.1f}" '
                     f'x2="{x + step * 0.3:.1f}" y1="{y(median):.1f}" y2="{y(median):.1f}" stroke="#fff"/>'
                     f'<text x="{x:.1f}" y="{_H + 14}" text-anchor="middle">{html.escape(label)} '
                     f'(n={len(values)})</text>')
    return _frame(title, "".join(parts))


def _hint_band(hint: str) -> str:
    return next((band for band in ("osteoporosis likely", "indeterminate", "likely normal") if band in hint), "other")


def _task_charts(task: str, rows: list[dict]) -> list[str]:
    if task == "cobb":
        return [histogram("Largest Cobb angle (radiographs per 5° bin)", [r["largest_cobb_deg"] for r in rows], 5, "°"),
                bar_chart("Overall severity", dict(Counter(r["overall_severity"].split(":")[0] for r in rows)))]
    if task == "fracture":
        levels = list(dict.fromkeys(r["level"] for r in rows))
        return [bar_chart("Vertebrae called fractured, by level",
                          {lv: sum(r["level"] == lv and r["call"] == "fractured" for r in rows) for lv in levels}),
                histogram("Classifier probability per vertebra (0.1 bins)",
                          [r["probability"] for r in rows], 0.1, ""),
                bar_chart("Patients by call", dict(Counter(r["patient_call"] for r in
                                                           {r["study_id"]: r for r in rows}.values())))]
    done = [r for r in rows if r.get("segmented")]
    levels = list(dict.fromkeys(r["level"] for r in done))
    return [box_plot("Centrum mean HU by level (dashed: 110 and 160 HU, Pickhardt et al. 2013, set on L1)",
                     {lv: [r["hu_mean"] for r in done if r["level"] == lv] for lv in levels}, bands=(110, 160)),
            bar_chart("Density screening hints (vertebrae)",
                      dict(Counter(_hint_band(r["density_hint"]) for r in done)))]


def write_summary(path, task: str, counts: dict[str, int], rows: list[dict]) -> Path:
    """``summary.html`` of a cohort: the ledger's ``counts`` and the table ``rows``' distributions."""
    charts = [bar_chart("Studies by status", counts)] + (_task_charts(task, rows) if rows else [])
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>Cohort summary: {task}</title>"
            "<style>body{font-family:sans-serif;margin:2em}figure{display:inline-block;margin:1em}"
            "figcaption{font-weight:bold}</style></head><body>"
            f"<h1>Cohort summary: {task}</h1><p>{sum(counts.values())} studies: "
            + ", ".join(f"{n} {status}" for status, n in counts.items())
            + ". Research use: every result must be reviewed by a clinician.</p>"
            + "".join(c for c in charts if c) + "</body></html>\n")
    path = Path(path)
    with atomic_output(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path
