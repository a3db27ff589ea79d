"""Human-readable views of a bundle's parity figures: the Markdown report and the CLI's summary table."""

from __future__ import annotations

from typing import Any


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _rows(parity: dict[str, Any]) -> list[list[str]]:
    rows = []
    for g in parity["graphs"]:
        rows.append([g["graph"], g["layer"], g["precision"], _fmt(g["max_abs_diff"], ".2e"),
                     _fmt(g["mean_abs_diff"], ".2e"), _fmt(g.get("pixel_auroc"), ".4f"),
                     _fmt(g.get("image_auroc"), ".4f"), f"{g['bytes'] / 1e6:.2f}",
                     f"{g['nodes_before_simplify']}->{g['nodes_after_simplify']}",
                     str(len(g.get("float_nodes", []))) if g["precision"] == "int8" else "-"])
    return rows


HEADER = ["graph", "layer", "precision", "max abs diff", "mean abs diff", "pixel AUROC", "image AUROC", "MB",
          "nodes (simplify)", "float nodes"]


def summary_table(manifest: dict[str, Any], parity: dict[str, Any]) -> str:
    """A fixed-width table of every graph against PyTorch FP32."""
    rows = [HEADER, *_rows(parity)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    ref = parity["reference"]
    lines.append(f"PyTorch FP32 reference ({ref['mode']}, {ref['images']} synthetic images): "
                 f"pixel AUROC {ref['pixel_auroc']:.4f}, image AUROC {ref['image_auroc']:.4f}")
    return "\n".join(lines)


def markdown(manifest: dict[str, Any], parity: dict[str, Any]) -> str:
    """The bundle's ``report.md``."""
    ref = parity["reference"]
    out = [f"# Export report: {manifest['family']} ({manifest['image_type']}, {manifest['tiling']['mode']})", "",
           f"Checkpoint sha256 `{manifest['checkpoint']['sha256'][:16]}...`, epoch {manifest['checkpoint']['epoch']}; "
           f"produced by " + ", ".join(f"{k} {v}" for k, v in manifest["producer"].items()) + ".", "",
           f"Every graph is compared with the PyTorch FP32 full-image forward on {ref['images']} synthetic images "
           f"(half with defects). Reference pixel AUROC {ref['pixel_auroc']:.4f}, "
           f"image AUROC {ref['image_auroc']:.4f}.", "",
           "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    out += ["| " + " | ".join(r) + " |" for r in _rows(parity)]
    out += ["", "## Simplification (onnxsim): node count change per op type", ""]
    for g in parity["graphs"]:
        out.append(f"- `{g['graph']}`: {g['nodes_before_simplify']} -> {g['nodes_after_simplify']} nodes; "
                   f"{g['simplify_changes'] or 'no change'}")
    if parity["int8_search"]:
        out += ["", f"## INT8 accuracy search (allowed pixel AUROC drop {parity['max_auroc_drop']})", ""]
        for attempt in parity["int8_search"]:
            out.append(f"- {len(attempt['kept_float'])} nodes in float: pixel AUROC {attempt['pixel_auroc']:.4f} "
                       f"(drop {attempt['pixel_auroc_drop']:+.4f}) {attempt['kept_float']}")
        for g in parity["graphs"]:
            if g["precision"] == "int8":
                out.append(f"- `{g['graph']}` compute nodes left in float: {g.get('float_nodes') or 'none'}")
    if parity.get("stitched_vs_fcn"):
        s = parity["stitched_vs_fcn"]
        out += ["", "## Fully convolutional vs stitched (PyTorch FP32)", "",
                f"max abs diff {s['max_abs_diff']:.3e}, mean abs diff {s['mean_abs_diff']:.3e}, "
                f"pixel AUROC delta {s['pixel_auroc_delta']:+.4f}, image AUROC delta {s['image_auroc_delta']:+.4f}"]
    return "\n".join(out) + "\n"
