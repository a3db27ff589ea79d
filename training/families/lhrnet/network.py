"""The ``lhrnet`` network: Lite-HRNet-18 backbone, LiteFPN neck and a dual keypoint head.

(B, 4, H, W) -- RGB plus a padding mask, H and W multiples of 32 -- goes to five
maps at stride 4: ``heatmap_slot`` and ``heatmap_part`` (B, 1) in [0, 1],
``offset_slot`` and ``offset_part`` (B, 2) in [-0.5, 0.5] grid cells, and
``angle`` (B, 2), the part's rotation as a unit (sin, cos) vector.

Layout (every conv bias-free and followed by BatchNorm unless said otherwise;
the activation is SiLU in the backbone and the neck, ReLU in the head):

- Inverted residual block of width C (expand e = 2): 1x1 C->eC, BN, SiLU; 3x3
  depthwise, BN, SiLU; 1x1 eC->C, BN (linear bottleneck); plus the input.
  4C^2 + 28C parameters: 4,992 / 18,176 / 69,120 / 269,312 at C = 32/64/128/256.
- Stem: 3x3 stride-2 4->32, 3x3 stride-2 32->32 (each BN, SiLU), 2 blocks.
- Stages 2, 3, 4 each first add a branch from the lowest-resolution one
  (3x3 stride-2 depthwise + BN, 1x1 to the new width + BN, SiLU), then run 2, 3,
  2 blocks on every branch, then fuse: each target branch sums itself, every
  coarser branch through 1x1 + BN then bilinear upsampling (the 1x1 runs before
  the upsampling, where it is cheaper; both are linear so the parameters are the
  same), and every finer branch through stride-2 steps of (3x3 depthwise + BN,
  1x1 + BN) that keep the source width until the last step, which changes it to
  the target's (HRNet's rule); the sum goes through a full 3x3 conv, BN, SiLU.
- LiteFPN: 1x1 lateral + BN per branch to 128 channels; top-down from stride 32:
  each finer level is ``(w0 * lateral + w1 * up(coarser)) / (w0 + w1 + eps)``
  with ``w = softplus(learned)``, 2 weights per merge, 3 merges; a 3x3 128->128
  conv + BN + SiLU smooths each of the four levels on the way down, so the
  stride-4 output has passed all four.
- Dual head on the stride-4 map: four branches (heatmap and offset, for the slot
  and for the part), each 3x3 128->64 conv with bias + BN + ReLU then a 1x1
  conv with bias: heatmaps -> 1 channel, sigmoid, bias -log(9) so they start at
  0.1 (CenterNet's prior); offsets -> 2 channels, 0.5 * tanh. The angle is a
  fifth 1x1 64->2 on the part-offset branch (the part's regression features),
  L2-normalised in float32.

Parameters against the reference design's own count (SPEC, 3,284,846 in all):

========  =========  =========  ===========================================================
stage     ours       reference  how ours arises
========  =========  =========  ===========================================================
stem      20,480     20,480     1,216 + 9,280 (convs) + 2 x 4,992 (blocks)
stage 2   99,776     100,864    2,528 (new branch) + 46,336 (blocks) + 2,112 (up 64->32)
                                + 2,528 (down 32->64) + 46,272 (3x3 smoothing 32, 64)
stage 3   512,416    512,416    9,152 + 276,864 (blocks) + 32,416 (exchange) + 193,984
stage 4   1,701,568  1,701,568  34,688 + 723,200 (blocks) + 159,360 (exchange) + 784,320
fpn       653,318    653,318    61,440 (laterals) + 1,024 (their BN) + 4 x 147,712 + 6
head      296,200    296,200    4 x 73,920 (branches) + 65 + 65 + 130 + 130 + 130 (angle)
total     3,283,758  3,284,846  -1,088 (-0.03 %)
========  =========  =========  ===========================================================

Stage 2 is 1,088 short, as the SPEC says its own facts give: exactly one 1x1
32->32 conv + BN, most likely a transition conv on the stride-4 branch between
the stem and stage 2 in the reference (HRNet has such a slot). No stated fact
places it, so it is left out rather than invented.

Cost at 256x512 (``torch.utils.flop_counter``, convolutions): 5.81 GMACs, i.e.
11.62 GFLOPs counting a multiply-add as 2 -- stem 0.19, stages 2/3/4 0.31 /
0.58 / 0.64, LiteFPN 1.67, head 2.42 GMACs. Most of it runs at stride 4,
and the parameter budget puts it there: the head's four 3x3 128->64 convs
alone are 4 x 73,728 x 64 x 128 = 2.42 GMACs and the FPN's stride-4 smoothing
1.21. The SPEC's "about 0.45 GFLOPs per image" therefore cannot hold for these
layers at 256x512, whether it meant FLOPs or MACs.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from runtime.core import InvalidInputError, ModelLoadError

__all__ = ["DEFAULT_ARCH", "HEATMAP_PRIOR", "INPUT_MULTIPLE", "KeypointNetwork", "OUTPUT_NAMES", "OUTPUT_STRIDE",
           "REFERENCE_PARAMETERS", "build_network", "check_arch", "parameter_counts"]

#: names of the network's outputs, in the order an exported graph lists them
OUTPUT_NAMES: tuple[str, ...] = ("heatmap_slot", "heatmap_part", "offset_slot", "offset_part", "angle")
#: input pixels per output cell along each axis
OUTPUT_STRIDE = 4
#: input height and width must be multiples of this (the stride of the coarsest branch)
INPUT_MULTIPLE = 32
#: the heatmaps' initial value everywhere (focal-loss prior)
HEATMAP_PRIOR = 0.1
#: the reference design's parameter count per stage (SPEC), keys as :func:`parameter_counts` returns them
REFERENCE_PARAMETERS: dict[str, int] = {
    "stem": 20_480, "stage2": 100_864, "stage3": 512_416, "stage4": 1_701_568,
    "fpn": 653_318, "head": 296_200, "total": 3_284_846,
}

_OFFSET_RANGE = 0.5  # offsets live within half a grid cell of the cell centre
_FUSION_EPS = 1e-4
_ANGLE_EPS = 1e-6


def _conv_bn(in_ch: int, out_ch: int, kernel: int, *, stride: int = 1, groups: int = 1,
             act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
    ]
    if act:
        layers.append(nn.SiLU())
    return nn.Sequential(*layers)


def _down_step(in_ch: int, out_ch: int, *, act: bool) -> nn.Sequential:
    # Depthwise-separable stride-2 step: a fraction of a full 3x3 stride-2 conv's weights.
    return nn.Sequential(_conv_bn(in_ch, in_ch, 3, stride=2, groups=in_ch, act=False),
                         _conv_bn(in_ch, out_ch, 1, act=act))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, linear 1x1 project, identity shortcut."""

    def __init__(self, channels: int, expand: int) -> None:
        super().__init__()
        hidden = channels * expand
        self.body = nn.Sequential(
            _conv_bn(channels, hidden, 1),
            _conv_bn(hidden, hidden, 3, groups=hidden),
            _conv_bn(hidden, channels, 1, act=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Fusion(nn.Module):
    """HRNet exchange: every branch receives the sum of all branches at its resolution, then a 3x3 conv."""

    def __init__(self, widths: Sequence[int]) -> None:
        super().__init__()
        self.paths = nn.ModuleList()
        for i, target in enumerate(widths):
            row = nn.ModuleList()
            for j, source in enumerate(widths):
                if j == i:
                    row.append(nn.Identity())
                elif j > i:
                    row.append(_conv_bn(source, target, 1, act=False))
                else:
                    steps = [_down_step(source, source, act=True) for _ in range(i - j - 1)]
                    steps.append(_down_step(source, target, act=False))
                    row.append(nn.Sequential(*steps))
            self.paths.append(row)
        self.smooth = nn.ModuleList(_conv_bn(w, w, 3) for w in widths)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for i, (row, smooth) in enumerate(zip(self.paths, self.smooth)):
            total = xs[i]
            for j, path in enumerate(row):
                if j == i:
                    continue
                y = path(xs[j])
                if j > i:
                    y = F.interpolate(y, size=xs[i].shape[-2:], mode="bilinear", align_corners=False)
                total = total + y
            out.append(smooth(total))
        return out


class Stage(nn.Module):
    """Adds one branch (stride x2) from the coarsest one, runs the blocks of every branch, fuses."""

    def __init__(self, widths: Sequence[int], blocks: int, expand: int) -> None:
        super().__init__()
        self.new_branch = _down_step(widths[-2], widths[-1], act=True)
        self.branches = nn.ModuleList(
            nn.Sequential(*(InvertedResidual(w, expand) for _ in range(blocks))) for w in widths)
        self.fusion = Fusion(widths)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [*xs, self.new_branch(xs[-1])]
        return self.fusion([branch(x) for branch, x in zip(self.branches, xs)])


class LiteFPN(nn.Module):
    """Top-down pyramid with softplus-normalised two-input fusion; returns the finest level."""

    def __init__(self, widths: Sequence[int], channels: int) -> None:
        super().__init__()
        self.laterals = nn.ModuleList(_conv_bn(w, channels, 1, act=False) for w in widths)
        self.smooth = nn.ModuleList(_conv_bn(channels, channels, 3) for _ in widths)
        # One (lateral, top-down) weight pair per merge; ones -> an even mix at the start.
        self.fusion_weights = nn.Parameter(torch.ones(len(widths) - 1, 2))

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        weights = F.softplus(self.fusion_weights)
        weights = weights / (weights.sum(dim=1, keepdim=True) + _FUSION_EPS)
        top = self.smooth[-1](self.laterals[-1](xs[-1]))
        for level in range(len(xs) - 2, -1, -1):
            lateral = self.laterals[level](xs[level])
            up = F.interpolate(top, size=lateral.shape[-2:], mode="bilinear", align_corners=False)
            top = self.smooth[level](weights[level, 0] * lateral + weights[level, 1] * up)
        return top


def _head_branch(in_ch: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, hidden, 3, padding=1), nn.BatchNorm2d(hidden), nn.ReLU())


class DualHead(nn.Module):
    """Heatmap and offset branches for the slot and the part; the angle reads the part-offset branch."""

    def __init__(self, in_ch: int, hidden: int) -> None:
        super().__init__()
        self.heatmap_slot = _head_branch(in_ch, hidden)
        self.heatmap_part = _head_branch(in_ch, hidden)
        self.offset_slot = _head_branch(in_ch, hidden)
        self.offset_part = _head_branch(in_ch, hidden)
        self.heatmap_slot_out = nn.Conv2d(hidden, 1, 1)
        self.heatmap_part_out = nn.Conv2d(hidden, 1, 1)
        self.offset_slot_out = nn.Conv2d(hidden, 2, 1)
        self.offset_part_out = nn.Conv2d(hidden, 2, 1)
        self.angle_out = nn.Conv2d(hidden, 2, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        part = self.offset_part(x)
        # The squashing runs in float32 (a no-op without autocast): heatmap probabilities near 0 and 1
        # and the angle's norm are where bfloat16's 8 mantissa bits hurt.
        angle = self.angle_out(part).float()
        return {
            "heatmap_slot": torch.sigmoid(self.heatmap_slot_out(self.heatmap_slot(x)).float()),
            "heatmap_part": torch.sigmoid(self.heatmap_part_out(self.heatmap_part(x)).float()),
            "offset_slot": _OFFSET_RANGE * torch.tanh(self.offset_slot_out(self.offset_slot(x)).float()),
            "offset_part": _OFFSET_RANGE * torch.tanh(self.offset_part_out(part).float()),
            "angle": F.normalize(angle, dim=1, eps=_ANGLE_EPS),
        }


class KeypointNetwork(nn.Module):
    """(B, in_channels, H, W), H and W multiples of 32 -> dict of :data:`OUTPUT_NAMES` maps at stride 4."""

    def __init__(self, arch: Mapping[str, Any]) -> None:
        super().__init__()
        widths, blocks, expand = arch["widths"], arch["blocks"], arch["expand"]
        self.in_channels = arch["in_channels"]
        self.stem = nn.Sequential(
            _conv_bn(self.in_channels, widths[0], 3, stride=2),
            _conv_bn(widths[0], widths[0], 3, stride=2),
            *(InvertedResidual(widths[0], expand) for _ in range(arch["stem_blocks"])),
        )
        self.stage2 = Stage(widths[:2], blocks[0], expand)
        self.stage3 = Stage(widths[:3], blocks[1], expand)
        self.stage4 = Stage(widths[:4], blocks[2], expand)
        self.fpn = LiteFPN(widths, arch["fpn_channels"])
        self.head = DualHead(arch["fpn_channels"], arch["head_channels"])
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        head = self.head
        # Small final layers: the heatmaps start at the prior, offsets near 0, the angle in no direction.
        for conv in (head.heatmap_slot_out, head.heatmap_part_out, head.offset_slot_out, head.offset_part_out,
                     head.angle_out):
            nn.init.normal_(conv.weight, std=0.01)
        prior_bias = -math.log((1 - HEATMAP_PRIOR) / HEATMAP_PRIOR)
        nn.init.constant_(head.heatmap_slot_out.bias, prior_bias)
        nn.init.constant_(head.heatmap_part_out.bias, prior_bias)

    def _check_input(self, x: torch.Tensor) -> None:
        if (x.dim() != 4 or x.shape[1] != self.in_channels
                or x.shape[2] % INPUT_MULTIPLE or x.shape[3] % INPUT_MULTIPLE or 0 in x.shape):
            raise InvalidInputError(
                f"lhrnet expects (B, {self.in_channels}, H, W) with H and W positive multiples of "
                f"{INPUT_MULTIPLE}, got shape {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if not torch.jit.is_tracing():  # shapes are symbolic while exporting; the graph does not check them
            self._check_input(x)
        features = self.stage4(self.stage3(self.stage2([self.stem(x)])))
        return self.head(self.fpn(features))


#: the full-size network's architecture settings (a checkpoint stores the ones it was trained with)
DEFAULT_ARCH: dict[str, Any] = {
    "in_channels": 4,
    "widths": [32, 64, 128, 256],  # branches at strides 4, 8, 16, 32
    "blocks": [2, 3, 2],           # inverted residual blocks per branch in stages 2, 3, 4
    "stem_blocks": 2,
    "fpn_channels": 128,
    "head_channels": 64,
    "expand": 2,
}


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _positive_ints(key: str, value: Any, length: int) -> list[int]:
    if (not isinstance(value, Sequence) or isinstance(value, str) or len(value) != length
            or not all(_positive_int(v) for v in value)):
        raise InvalidInputError(f"lhrnet arch {key} must be a list of {length} positive integers, got {value!r}")
    return list(value)


def check_arch(arch: Mapping[str, Any]) -> dict[str, Any]:
    """``arch`` completed with the defaults and checked.

    Args:
        arch: some of :data:`DEFAULT_ARCH`'s keys: ``widths`` 4 strictly increasing positive integers,
            ``blocks`` 3 positive integers (stages 2, 3, 4), every other value a positive integer.

    Returns:
        A new dict with every key of :data:`DEFAULT_ARCH`, sequences as lists.

    Raises:
        ModelLoadError: for a key the network does not have (e.g. a checkpoint of another family).
        InvalidInputError: for a value of the wrong type, length or range.

    Example:
        >>> check_arch({"widths": [8, 16, 32, 64]})["fpn_channels"]
        128
    """
    if not isinstance(arch, Mapping):
        raise InvalidInputError(f"lhrnet arch must be a dict, got {type(arch).__name__}")
    unknown = sorted(set(arch) - set(DEFAULT_ARCH))
    if unknown:
        raise ModelLoadError(f"lhrnet arch has unknown keys {unknown}; expected some of {sorted(DEFAULT_ARCH)}")
    merged = {**DEFAULT_ARCH, **arch}
    merged["widths"] = _positive_ints("widths", merged["widths"], 4)
    if any(a >= b for a, b in zip(merged["widths"], merged["widths"][1:])):
        raise InvalidInputError(f"lhrnet arch widths must be strictly increasing (finest branch first), "
                                f"got {merged['widths']}")
    merged["blocks"] = _positive_ints("blocks", merged["blocks"], 3)
    for key in ("in_channels", "stem_blocks", "fpn_channels", "head_channels", "expand"):
        if not _positive_int(merged[key]):
            raise InvalidInputError(f"lhrnet arch {key} must be a positive integer, got {merged[key]!r}")
    return merged


def build_network(arch: Mapping[str, Any] | None = None) -> KeypointNetwork:
    """A freshly initialised lhrnet of ``arch`` (missing keys: :data:`DEFAULT_ARCH`).

    Args:
        arch: ``in_channels``, ``widths``, ``blocks``, ``stem_blocks``, ``fpn_channels``, ``head_channels``
            and ``expand`` (see :data:`DEFAULT_ARCH`; e.g. widths [8, 16, 32, 64] and 16 channels for tests).

    Returns:
        The network, in training mode.

    Raises:
        ModelLoadError: for a key the network does not have.
        InvalidInputError: for a value of the wrong type, length or range.

    Example:
        >>> net = build_network({"widths": [8, 16, 32, 64], "fpn_channels": 16, "head_channels": 16})
        >>> net(torch.zeros(1, 4, 64, 128))["heatmap_part"].shape
        torch.Size([1, 1, 16, 32])
    """
    return KeypointNetwork(check_arch(arch or {}))


def parameter_counts(network: KeypointNetwork) -> dict[str, int]:
    """Trainable parameters per stage, keyed like :data:`REFERENCE_PARAMETERS` (``total`` = all of them).

    Raises:
        InvalidInputError: when ``network`` is not an lhrnet :class:`KeypointNetwork`.

    Example:
        >>> parameter_counts(build_network())["stage3"]
        512416
    """
    if not isinstance(network, KeypointNetwork):
        raise InvalidInputError(f"expected an lhrnet KeypointNetwork, got {type(network).__name__}")
    counts = {name: sum(p.numel() for p in getattr(network, name).parameters())
              for name in ("stem", "stage2", "stage3", "stage4", "fpn", "head")}
    counts["total"] = sum(p.numel() for p in network.parameters())
    return counts
