"""Human-readable views of a bundle's parity figures: the Markdown report and the CLI's summary table."""

from __future__ import annotations

from typing import Any


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _metric_names(parity: dict[str, Any]) -> list[str]:
    return list(parity["reference"]["metrics"])


def _header(parity: dict[str, Any]) -> list[str]:
    sizes = ["MB", "MiB (reference)"] if _has_reference_sizes(parity) else ["MB"]
    return ["graph", "layer", "precision", "max abs diff", "mean abs diff", *_metric_names(parity), *sizes,
            "nodes (simplify)", "float nodes", "accuracy guard"]


def _has_reference_sizes(parity: dict[str, Any]) -> bool:
    return any("reference_mib" in g for g in parity["graphs"])


def _sizes(parity: dict[str, Any], graph: dict[str, Any]) -> list[str]:
    ours = [f"{graph['bytes'] / 1e6:.2f}"]
    if not _has_reference_sizes(parity):
        return ours
    reference = graph.get("reference_mib")
    return [*ours, "-" if reference is None else f"{graph['bytes'] / 2**20:.2f} ({reference:.2f})"]


def _rows(parity: dict[str, Any]) -> list[list[str]]:
    rows = []
    for g in parity["graphs"]:
        metrics = g.get("metrics", {})
        rows.append([g["graph"], g["layer"], g["precision"], _fmt(g["max_abs_diff"], ".2e"),
                     _fmt(g["mean_abs_diff"], ".2e"), *(_fmt(metrics.get(m), ".4f") for m in _metric_names(parity)),
                     *_sizes(parity, g), f"{g['nodes_before_simplify']}->{g['nodes_after_simplify']}",
                     str(len(g.get("float_nodes", []))) if g["precision"] == "int8" else "-", _verdict(g)])
    return rows


def _verdict(graph: dict[str, Any]) -> str:
    """A full-image graph's accuracy guard in a word: what ``precision="auto"`` goes by."""
    guard = graph.get("guard")
    if guard is None:
        return "-"
    return "passed" if guard["passed"] else "FAILED"


def _agreement_lines(parity: dict[str, Any]) -> list[str]:
    lines = []
    for g in parity["graphs"]:
        if "guard" not in g:
            continue
        agreement = ", ".join(f"{k} {v:.4f}" for k, v in g.get("agreement", {}).items())
        losses = ", ".join(f"{m} {loss:+.4f} (allowed {g['guard']['allowed'][m]:g})"
                           for m, loss in g["guard"]["losses"].items())
        lines.append(f"- `{g['graph']}`: {agreement or 'no agreement figures'}; losses {losses}: "
                     f"{_verdict(g).lower()}")
    return lines


def _reference_line(parity: dict[str, Any]) -> str:
    ref = parity["reference"]
    values = ", ".join(f"{k} {v:.4f}" for k, v in ref["metrics"].items())
    return f"PyTorch FP32 reference ({ref['mode']}, {ref['images']} synthetic images): {values}"


def summary_table(manifest: dict[str, Any], parity: dict[str, Any]) -> str:
    """A fixed-width table of every graph against PyTorch FP32."""
    header = _header(parity)
    rows = [header, *_rows(parity)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(_reference_line(parity))
    return "\n".join(lines)


def markdown(manifest: dict[str, Any], parity: dict[str, Any]) -> str:
    """The bundle's ``report.md``."""
    header = _header(parity)
    ref = parity["reference"]
    out = [f"# Export report: {manifest['family']} ({manifest['variant']}, {ref['mode']})", "",
           f"Checkpoint sha256 `{manifest['checkpoint']['sha256'][:16]}...`, epoch {manifest['checkpoint']['epoch']}; "
           f"produced by " + ", ".join(f"{k} {v}" for k, v in manifest["producer"].items()) + ".", "",
           f"Every graph is compared with the PyTorch FP32 module of its layer on {ref['images']} synthetic "
           f"images. {_reference_line(parity)}.", "",
           "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in _rows(parity)]
    agreement = _agreement_lines(parity)
    if agreement:
        out += ["", "## Agreement with PyTorch FP32 at the manifest's threshold, and the accuracy guard", "",
                "What users act on (decisions, defect pixels, points), graph against PyTorch FP32 on the same "
                "images. `precision=\"auto\"` runs a reduced precision only when its guard passed.", "", *agreement]
    out += ["", "## Per output: max / mean abs diff against PyTorch", ""]
    for g in parity["graphs"]:
        diffs = ", ".join(f"`{name}` {o['max_abs_diff']:.2e} / {o['mean_abs_diff']:.2e}"
                          for name, o in g["outputs"].items())
        out.append(f"- `{g['graph']}`: {diffs}")
    out += ["", "## Simplification (onnxsim): node count change per op type", ""]
    for g in parity["graphs"]:
        out.append(f"- `{g['graph']}`: {g['nodes_before_simplify']} -> {g['nodes_after_simplify']} nodes; "
                   f"{g['simplify_changes'] or 'no change'}")
    if parity["int8_search"]:
        guards = ", ".join(f"{g['metric']} (allowed loss {g['max_drop']})" for g in parity["int8_guards"])
        out += ["", f"## INT8 accuracy search: {guards}", ""]
        for attempt in parity["int8_search"]:
            values = ", ".join(f"{m} {v:.4f} (loss {attempt['losses'][m]:+.4f})" for m, v in attempt["values"].items())
            verdict = ("passed" if attempt["passed"]
                       else "failed, the closest: kept" if attempt.get("kept") else "failed")
            out.append(f"- {len(attempt['kept_float'])} nodes in float: {values}: {verdict}; "
                       f"{attempt['kept_float']}")
        for g in parity["graphs"]:
            if g["precision"] == "int8":
                out.append(f"- `{g['graph']}` compute nodes left in float: {g.get('float_nodes') or 'none'}")
    if parity.get("mode_report"):
        r = parity["mode_report"]
        out += ["", f"## {r['title']}", "", ", ".join(f"{k} {v:+.3e}" for k, v in r.items() if k != "title")]
    return "\n".join(out) + "\n"
