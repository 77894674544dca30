"""The run's report: a terminal summary and a self-contained HTML page with inline SVG plots."""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from simulations import svg
from simulations.provinces import all_provinces
from simulations.runner import SimResult
from simulations.scenario import NOT_AVAILABLE
from simulations.traffic import Verification

VERDICT_COLOURS = {
    "VALID": "#3a9d5d",
    "VALID_OFFLINE": "#e0a526",
    "INVALID": "#c8553d",
    "ERROR": "#555555",
}
LATENCY_COLOURS = {"p50": "#4a7ebb", "p95": "#e0a526", "p99": "#c8553d"}
CODE_COLOURS = {"GREEN": "#3a9d5d", "YELLOW": "#e0a526", "RED": "#c8553d"}


def colours_by_day(result: SimResult) -> dict[str, list[dict[str, int]]]:
    """Per province, one row a simulated day: codes by colour and quarantines (the provinces'
    own statistics, GetStatistics, sampled by their health authorities)."""
    rows: dict[str, list[dict[str, int]]] = {}
    for s in result.residents.samples if result.residents else ():
        rows.setdefault(s.province, []).append(
            {"day": s.day, "GREEN": s.green, "YELLOW": s.yellow, "RED": s.red,
             "in_quarantine": s.in_quarantine}
        )  # fmt: skip
    return rows


def _colour_lines(summary: dict[str, Any]) -> list[str]:
    """A line per province: yellow and red codes every few simulated days."""
    days = summary["colours_by_day"]
    if not days:
        return []
    lines = ["  colours by rule (yellow/red codes on simulated days, per province):"]
    for province, rows in sorted(days.items()):
        step = max(1, len(rows) // 8)
        cells = "  ".join(f"d{r['day']}:{r['YELLOW']}/{r['RED']}" for r in rows[::step])
        lines.append(f"    {province}  {cells}")
    c = summary["colour_policy"]
    lines.append(
        f"    {c['applications']} applications, {c['exposures']} exposures declared, "
        f"{c['check_ins']} check-ins ({c['missed_days']} days missed), "
        f"{c['quarantines_ended']} quarantines ended by the nodes' clocks, no SetStatus"
    )
    return lines


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def per_second(verifications: Sequence[Verification], seconds: int) -> dict[str, list[float]]:
    series = {name: [0.0] * seconds for name in VERDICT_COLOURS}
    for v in verifications:
        second = min(seconds - 1, max(0, int(v.scan.sent)))
        series[v.verdict][second] += 1
    return series


def latency_series(
    verifications: Sequence[Verification], seconds: int
) -> dict[str, list[tuple[float, float]]]:
    buckets: list[list[float]] = [[] for _ in range(seconds)]
    for v in verifications:
        if v.verdict != "ERROR":
            buckets[min(seconds - 1, max(0, int(v.scan.sent)))].append(v.latency * 1000)
    return {
        name: [(i + 0.5, percentile(b, q)) for i, b in enumerate(buckets) if b]
        for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
    }


def summarise(result: SimResult) -> dict[str, Any]:
    """The figures of the run, as JSON-able data (also written next to the HTML)."""
    vs = result.verifications
    latencies = [v.latency * 1000 for v in vs if v.verdict != "ERROR"]
    inv = result.invariants
    return {
        "provinces": len(result.config.provinces),
        "replicas": result.config.replicas,
        "gateways": result.config.gateways,
        "travellers": result.config.travellers,
        "duration_s": result.config.duration,
        "setup_s": round(result.setup_s, 1),
        "wall_s": round(result.wall_s, 1),
        "verifications": len(vs),
        "throughput_per_s": round(len(vs) / max(result.config.duration, 1e-9), 1),
        "verdicts": dict(Counter(v.verdict for v in vs)),
        "reasons": dict(Counter(v.reason for v in vs if v.reason)),
        "kinds": dict(Counter(v.scan.kind for v in vs)),
        "modes": dict(Counter(v.mode for v in vs)),
        "gateways_answering": {str(k): n for k, n in Counter(v.gateway for v in vs).items()},
        "failovers": sum(1 for v in vs if v.failover and v.gateway >= 0),
        "latency_ms": {
            "p50": round(percentile(latencies, 0.5), 2),
            "p95": round(percentile(latencies, 0.95), 2),
            "p99": round(percentile(latencies, 0.99), 2),
            "mean": round(statistics.fmean(latencies), 2) if latencies else 0.0,
        },
        "codes_issued_or_refreshed": result.issued,
        "status_changes": {
            "sent": result.ledger.sent,
            "retries": result.ledger.retries,
            "unacknowledged_at_end": result.ledger.abandoned,
        },
        "shed_by_load_generator": result.shed,
        "colours_by_day": colours_by_day(result),
        "colour_policy": {
            "day_s": result.config.day_s,
            "applications": result.residents.applied if result.residents else 0,
            "exposures": result.residents.exposures if result.residents else 0,
            "check_ins": result.residents.check_ins if result.residents else 0,
            "missed_days": result.residents.missed if result.residents else 0,
            "failures": result.residents.failures if result.residents else 0,
            "quarantines_ended": inv.quarantines_ended,
        },
        "cross_province": cross_province(result),
        "notes": result.notes,
        "steps": [
            {
                "name": s.name,
                "at_s": s.at,
                "status": s.status,
                "detail": s.detail,
                "started_s": round(s.started, 2),
                "finished_s": round(s.finished, 2),
            }
            for s in result.steps
        ],
        "invariants": {
            "holds": inv.holds,
            "bound_s": inv.bound,
            "wrong_accepts": dict(inv.wrong_accepts),
            "injected": dict(inv.injected),
            "stale_valid": inv.stale_valid,
            "valid_checked": inv.checked_valid,
            "lost_updates": inv.lost_updates,
            "codes_unreachable_at_end": inv.unreachable_codes,
            "codes_checked": inv.checked_codes,
            "codes_with_unacknowledged_change": inv.unacknowledged_codes,
            "early_quarantine_ends": inv.early_ends,
            "histories_checked": inv.histories_checked,
            "examples": inv.examples,
        },
    }


COLOUR_NAMES = {1: "GREEN", 2: "YELLOW", 3: "RED"}
CROSS_ROWS = 8


def cross_province(result: SimResult) -> list[dict[str, Any]]:
    """Genuine codes verified in another province: per (issuer, checkpoint province), the
    verdicts and the colours the VALID ones carried, busiest pairs first."""
    codes = list(result.config.provinces)
    pairs: dict[tuple[str, str], Counter[str]] = {}
    for v in result.verifications:
        scan = v.scan
        if scan.kind != "genuine" or scan.issuer == scan.destination:
            continue
        tally = pairs.setdefault((codes[scan.issuer], codes[scan.destination]), Counter())
        tally[v.verdict] += 1
        if v.verdict == "VALID":
            tally[COLOUR_NAMES.get(v.colour, "?")] += 1
    rows = [{"issuer": i, "checkpoint": c, "counts": dict(t)} for (i, c), t in pairs.items()]
    verdicts = ("VALID", "VALID_OFFLINE", "INVALID", "ERROR")
    return sorted(rows, key=lambda r: -sum(r["counts"].get(k, 0) for k in verdicts))


def _cross_lines(rows: list[dict[str, Any]]) -> list[str]:
    names = all_provinces()
    lines = ["  cross-province verifications (code issuer -> checkpoint province):"]
    for row in rows[:CROSS_ROWS]:
        n = row["counts"]
        colours = ", ".join(f"{c} {n[c]}" for c in COLOUR_NAMES.values() if n.get(c))
        others = "  ".join(f"{k} {n[k]}" for k in ("VALID_OFFLINE", "INVALID", "ERROR") if n.get(k))
        lines.append(
            f"    {row['issuer']} {names[row['issuer']].name_en:<10} -> "
            f"{row['checkpoint']} {names[row['checkpoint']].name_en:<10}  "
            f"VALID {n.get('VALID', 0)} ({colours})  {others}".rstrip()
        )
    if len(rows) > CROSS_ROWS:
        lines.append(f"    ... {len(rows) - CROSS_ROWS} more pairs in the HTML report")
    return lines


def terminal_summary(summary: dict[str, Any], html: Path) -> str:
    inv = summary["invariants"]
    lat = summary["latency_ms"]
    lines = [
        "",
        f"hcx sim: {summary['provinces']} provinces x {summary['replicas']} replicas, "
        f"{summary['gateways']} gateways, {summary['travellers']:,} travellers, "
        f"{summary['duration_s']:.0f} s of traffic (set-up {summary['setup_s']} s)",
        f"  verifications {summary['verifications']:,} ({summary['throughput_per_s']}/s)  "
        + "  ".join(f"{k} {n:,}" for k, n in sorted(summary["verdicts"].items())),
        f"  latency ms: p50 {lat['p50']}  p95 {lat['p95']}  p99 {lat['p99']}   "
        f"gateway failovers {summary['failovers']}   shed {summary['shed_by_load_generator']}",
        "  modes: " + "; ".join(f"{k} {n:,}" for k, n in sorted(summary["modes"].items())),
        *_cross_lines(summary["cross_province"]),
        *_colour_lines(summary),
        "  scenario:",
    ]
    for s in summary["steps"]:
        took = f" [{s['finished_s'] - s['started_s']:.1f} s]" if s["finished_s"] else ""
        lines.append(
            f"    t={s['at_s']:>5.1f} s  {s['name']:<32} {s['status']}{took}: {s['detail']}"
        )
    injected = ", ".join(f"{k} {n}" for k, n in sorted(inv["injected"].items())) or "none"
    mark = {True: "ok  ", False: "FAIL"}
    wrong = sum(inv["wrong_accepts"].values())
    lines += [
        "  invariants:",
        f"    [{mark[wrong == 0]}] wrong accepts: {wrong} (injected: {injected})",
        f"    [{mark[inv['stale_valid'] == 0]}] stale colours served as VALID > "
        f"{inv['bound_s']} s after acknowledgement: {inv['stale_valid']} "
        f"(of {inv['valid_checked']:,} VALID verdicts)",
        f"    [{mark[inv['lost_updates'] == 0]}] lost status updates: {inv['lost_updates']} "
        f"(of {inv['codes_checked']:,} codes checked; "
        f"{inv['codes_with_unacknowledged_change']} with a change unacknowledged at the end)",
        f"    [{mark[inv['early_quarantine_ends'] == 0]}] quarantines ended before their days "
        f"and check-ins: {inv['early_quarantine_ends']} (of "
        f"{summary['colour_policy']['quarantines_ended']} ended; "
        f"{inv['histories_checked']} histories read)",
    ]
    if inv["codes_unreachable_at_end"]:
        lines.append(f"    [FAIL] codes whose province did not answer the final read: "
                     f"{inv['codes_unreachable_at_end']}")  # fmt: skip
    lines += [f"      {e}" for e in inv["examples"]]
    lines += [f"  note: {n}" for n in summary["notes"]]
    lines.append(f"  report: {html}")
    return "\n".join(lines)


def traffic_matrix(result: SimResult) -> tuple[list[str], list[list[int]]]:
    codes = list(result.config.provinces)
    names = all_provinces()
    matrix = [[0] * len(codes) for _ in codes]
    for v in result.verifications:
        matrix[v.scan.origin][v.scan.destination] += 1
    return [f"{names[c].name_en} {c}" for c in codes], matrix


def _table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def revocation_section(result: SimResult) -> str:
    step = next((s for s in result.steps if "revocation" in s.name), None)
    if step is None or step.status != "done":
        why = f"{step.status}: {step.detail}" if step else "no revocation step in this scenario"
        return f"<p class='na'>Revocation propagation: {escape(why)}</p>"
    revoked_at = step.finished
    compromised = [v for v in result.verifications if v.scan.kind == "compromised"]
    bars = []
    for gateway in range(result.config.gateways):
        seen = [v for v in compromised if v.gateway == gateway]
        accepted = [v.scan.sent for v in seen if v.verdict in ("VALID", "VALID_OFFLINE")]
        last = max(accepted, default=revoked_at)
        bars.append((f"gateway-{gateway}", round(max(0.0, last - revoked_at) * 1000, 1)))
    return (
        "<p>Last acceptance of a code signed by the revoked key after the revocation was "
        "acknowledged, per gateway (ms; 0 = refused from the first scan after).</p>"
        + svg.bar_chart(bars, x_label="ms after the revocation was acknowledged")
    )


def write_html(result: SimResult, summary: dict[str, Any], path: Path) -> None:
    seconds = max(1, int(result.config.duration + 0.999))
    markers = [(s.started, s.name) for s in result.steps if s.status != NOT_AVAILABLE]
    labels, matrix = traffic_matrix(result)
    verdicts = svg.stacked_chart(
        per_second(result.verifications, seconds), VERDICT_COLOURS,
        x_label="seconds since traffic start", y_label="verifications per second",
        markers=markers,
    )  # fmt: skip
    latency = svg.line_chart(
        latency_series(result.verifications, seconds), LATENCY_COLOURS,
        x_label="seconds since traffic start", y_label="latency (ms)", x_max=seconds,
        markers=markers,
    )  # fmt: skip
    steps = _table(
        [(f"{s['at_s']:.1f}", s["name"], s["status"], s["detail"]) for s in summary["steps"]],
        ("at (s)", "step", "status", "what happened"),
    )
    inv = summary["invariants"]
    invariants = _table(
        [
            ("zero wrong accepts", sum(inv["wrong_accepts"].values()), json.dumps(inv["injected"])),
            (
                f"zero stale VALID colours (bound {inv['bound_s']} s)",
                inv["stale_valid"],
                f"{inv['valid_checked']} VALID verdicts checked",
            ),
            ("zero lost status updates", inv["lost_updates"], f"{inv['codes_checked']} codes"),
            (
                "no quarantine ends before its days and check-ins",
                inv["early_quarantine_ends"],
                f"{inv['histories_checked']} histories",
            ),
        ],
        ("invariant", "violations", "checked"),
    )
    colour_charts = "".join(
        f"<h3>{escape(province)}</h3>"
        + svg.line_chart(
            {name: [(r["day"], r[name]) for r in rows] for name in ("GREEN", "YELLOW", "RED")},
            CODE_COLOURS,
            x_label=f"simulated day ({result.config.day_s:g} s each)",
            y_label="codes",
            x_max=max((r["day"] for r in rows), default=1),
        )
        for province, rows in sorted(summary["colours_by_day"].items())
    )
    figures = _table(
        [
            (k, json.dumps(v, ensure_ascii=False))
            for k, v in summary.items()
            if k not in ("steps", "invariants", "colours_by_day")
        ],
        ("figure", "value"),
    )
    verdict = "all invariants hold" if inv["holds"] else "AN INVARIANT FAILED"
    path.write_text(
        PAGE.format(
            when=escape(time.strftime("%Y-%m-%d %H:%M:%S")),
            verdict=verdict,
            cls="ok" if inv["holds"] else "fail",
            invariants=invariants,
            steps=steps,
            verdicts=verdicts,
            latency=latency,
            revocation=revocation_section(result),
            matrix=svg.heatmap(labels, matrix, title="origin (rows) → destination (columns)"),
            colours=colour_charts or "<p class='na'>no samples</p>",
            figures=figures,
        ),
        encoding="utf-8",
    )


def write_report(result: SimResult, directory: Path) -> tuple[Path, str, dict[str, Any]]:
    """Write report.html and summary.json into ``directory``; return (html, terminal text, data)."""
    summary = summarise(result)
    html = directory / "report.html"
    write_html(result, summary, html)
    (directory / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    return html, terminal_summary(summary, html), summary


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hcx national simulation</title>
<style>
body {{ font-family: sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 13px; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }}
.ok {{ color: #2b7a45; }} .fail {{ color: #b02a1a; }} .na {{ color: #777; font-style: italic; }}
</style></head><body>
<h1>hcx national simulation</h1>
<p>{when} — <strong class="{cls}">{verdict}</strong></p>
<h2>Invariants</h2>{invariants}
<h2>Scenario</h2>{steps}
<h2>Verifications over time, by verdict</h2>{verdicts}
<h2>Latency percentiles (per second, client-side, incl. failover)</h2>{latency}
<h2>Revocation propagation</h2>{revocation}
<h2>Province-to-province traffic (checkpoint scans)</h2>{matrix}
<h2>Colours by rule over simulated days, per province</h2>{colours}
<h2>Figures</h2>{figures}
</body></html>
"""
