"""brn's sections of a run's report: AUROC on a split, the image scores of good and defect images, the worst cases.

Scores, labels and metrics are the runtime part's (an image's score is its
heatmap's maximum, as in ``runtime.evaluate``); the figures are the 8-panel
figures of :func:`runtime.families.brn.panels` (those of ``runtime.infer --visualize``)
with the ground truth outlined.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn

from runtime.core import HeatmapPost, auroc, get_family, read_image, write_png
from runtime.families.brn import COLOR_ORDER, NAME, image_type, panels
from training._family import ReportSection
from training._reporting import figure, markdown_table, save_figure, shrink
from training.families.brn.evaluate import predict_heatmaps

__all__ = ["report_sections"]

#: how many of the worst good and of the worst defect images the gallery shows
WORST = 3
#: the widest gallery figure in pixels (8 panels of a 1024-wide mvtec image are scaled down)
_MAX_WIDTH = 3600


def report_sections(network: nn.Module, root: str | Path, split: str, variant: str,
                    out_dir: Path) -> list[ReportSection]:
    """Detection quality of ``network`` on ``split`` and its worst cases, with PNGs written into ``out_dir``.

    Args:
        network: the brn network.
        root: the dataset root.
        split: a labelled split (``test`` or ``valid``).
        variant: the image type of the dataset's images.
        out_dir: where the figures go.

    Returns:
        Two sections: "Detection" (image- and pixel-AUROC, counts at the bundle's
        threshold, a histogram of the image scores of good and defect images) and
        "Worst cases" (the highest-scoring good images and the lowest-scoring
        defect images as 8-panel figures).

    Raises:
        InvalidInputError: a missing split, image or mask.
    """
    runtime_family = get_family(NAME)
    plan = image_type(variant).tiling()
    post = runtime_family.postprocess_spec(variant)
    assert isinstance(post, HeatmapPost)
    items = runtime_family.labelled_images(Path(root), split)
    heatmaps, masks = [], []
    for item in items:
        image = read_image(item.image, expected_hw=(plan.height, plan.width), what=f"image type {variant!r}",
                           color_order=COLOR_ORDER)
        heatmaps.append(predict_heatmaps(network, image[None], plan)[0])
        masks.append(runtime_family.read_label(item, (plan.height, plan.width)))
    scores = np.array([float(h.max()) for h in heatmaps])
    defect = np.array([bool(m.any()) for m in masks])

    histogram = _score_histogram(scores, defect, post.threshold, out_dir / "scores.png")
    flagged = scores > post.threshold
    rows = [["image AUROC", _auroc(defect, scores)],
            ["pixel AUROC", _auroc(np.stack(masks), np.stack(heatmaps))],
            ["images", f"{int((~defect).sum())} good, {int(defect.sum())} with a defect"],
            [f"good images flagged (score > {post.threshold:g})", f"{int(flagged[~defect].sum())} of "
                                                                  f"{int((~defect).sum())}"],
            [f"defect images missed (score <= {post.threshold:g})", f"{int((~flagged[defect]).sum())} of "
                                                                    f"{int(defect.sum())}"]]
    detection = ReportSection(
        "Detection", markdown_table(["", "value"], rows) + "\n\nAn image's score is its heatmap's maximum.",
        [histogram])

    good = [i for i in np.argsort(-scores, kind="stable") if not defect[i]][:WORST]
    missed = [i for i in np.argsort(scores, kind="stable") if defect[i]][:WORST]
    cases, images, table = [("good", i) for i in good] + [("defect", i) for i in missed], [], []
    for n, (kind, i) in enumerate(cases, 1):
        name = f"worst_{kind}_{n if kind == 'good' else n - len(good)}.png"
        image = read_image(items[i].image, expected_hw=(plan.height, plan.width), color_order=COLOR_ORDER)
        images.append(write_png(out_dir / name, shrink(panels(image, heatmaps[i], masks[i]), _MAX_WIDTH)))
        table.append([name, kind, f"`{items[i].image}`", float(scores[i]), int(masks[i].sum())])
    text = ("The highest-scoring good images (false alarms first), then the lowest-scoring defect images "
            "(misses first): Target, Ref1, Ref2, the two differences and the double detection (stretched by "
            "the factor in their labels; warm: Target brighter, cool: darker), the heatmap and the RGB "
            "composite (red: only Target holds it), the ground truth outlined in green.\n\n" +
            markdown_table(["figure", "truth", "image", "score", "defect pixels"], table))
    return [detection, ReportSection("Worst cases", text, images)]


def _auroc(labels: np.ndarray, scores: np.ndarray) -> float | str:
    try:
        return auroc(labels, scores)
    except ValueError:  # one class only
        return "n/a (needs good and defect images)"


def _score_histogram(scores: np.ndarray, defect: np.ndarray, threshold: float, path: Path) -> Path:
    fig, (ax,) = figure()
    bins = np.linspace(0.0, 1.0, 21)
    ax.hist(scores[~defect], bins, alpha=0.6, color="tab:green", label=f"good ({int((~defect).sum())})")
    ax.hist(scores[defect], bins, alpha=0.6, color="tab:red", label=f"defect ({int(defect.sum())})")
    ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    ax.set(title="image scores", xlabel="score (heatmap maximum)", ylabel="images", xlim=(0, 1))
    ax.legend()
    return save_figure(fig, path)
