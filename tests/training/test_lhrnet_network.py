"""lhrnet's network: parameter budget per stage, outputs, cost, arch checks, mixed precision and ONNX export."""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from runtime.core import InvalidInputError, ModelLoadError
from training.families.lhrnet.network import (DEFAULT_ARCH, OUTPUT_NAMES, REFERENCE_PARAMETERS, build_network,
                                              check_arch, parameter_counts)

SMALL_ARCH = {"widths": [8, 16, 32, 64], "blocks": [1, 1, 1], "stem_blocks": 1, "fpn_channels": 16,
              "head_channels": 16}
STAGES = ("stem", "stage2", "stage3", "stage4", "fpn", "head")
#: convolution MACs of the default arch at 256x512, as the network's docstring derives them
DEFAULT_GMACS = 5.81
SPEC_GFLOPS = 0.45


@pytest.fixture(scope="module")
def full_size() -> tuple[dict[str, torch.Tensor], int]:
    """The default network's outputs for one fresh 256x512 image and the FLOPs that forward counted."""
    torch.manual_seed(0)
    network = build_network().eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        outputs = network(torch.rand(1, 4, 256, 512))
    return outputs, counter.get_total_flops()


def _calibrated_small(seed: int = 0) -> nn.Module:
    # One training-mode pass gives BatchNorm real statistics, so eval-mode activations are realistic.
    torch.manual_seed(seed)
    network = build_network(SMALL_ARCH)
    with torch.no_grad():
        network(torch.rand(2, 4, 64, 128))
    return network.eval()


def _check_outputs(outputs: dict[str, torch.Tensor], batch: int, rows: int, cols: int) -> None:
    assert tuple(outputs) == OUTPUT_NAMES
    channels = {"heatmap_slot": 1, "heatmap_part": 1, "offset_slot": 2, "offset_part": 2, "angle": 2}
    for name, value in outputs.items():
        assert value.shape == (batch, channels[name], rows, cols), name
        assert value.dtype == torch.float32 and torch.isfinite(value).all(), name
    for name in ("heatmap_slot", "heatmap_part"):
        assert outputs[name].min() >= 0 and outputs[name].max() <= 1
        assert outputs[name].mean().item() == pytest.approx(0.1, abs=0.01)  # the focal-loss prior
    for name in ("offset_slot", "offset_part"):
        assert outputs[name].abs().max() <= 0.5
    torch.testing.assert_close(outputs["angle"].norm(dim=1), torch.ones(batch, rows, cols), atol=1e-5, rtol=0)


def test_parameter_counts_match_the_reference_per_stage():
    ours = parameter_counts(build_network())
    assert sum(REFERENCE_PARAMETERS[s] for s in STAGES) == REFERENCE_PARAMETERS["total"]
    print(f"\n{'stage':<8}{'ours':>12}{'reference':>12}{'difference':>12}")
    for stage in (*STAGES, "total"):
        diff = 100 * (ours[stage] - REFERENCE_PARAMETERS[stage]) / REFERENCE_PARAMETERS[stage]
        print(f"{stage:<8}{ours[stage]:>12,}{REFERENCE_PARAMETERS[stage]:>12,}{diff:>+11.3f}%")
    assert sum(ours[s] for s in STAGES) == ours["total"]
    assert ours["total"] == pytest.approx(REFERENCE_PARAMETERS["total"], rel=0.02)
    for stage in STAGES:
        assert ours[stage] == pytest.approx(REFERENCE_PARAMETERS[stage], rel=0.05), stage
    # The documented decomposition: exact everywhere except stage 2's one 1x1 32->32 conv + BN.
    assert {s: REFERENCE_PARAMETERS[s] - ours[s] for s in STAGES} == {s: 1088 * (s == "stage2") for s in STAGES}


def test_parameter_counts_refuses_another_network():
    with pytest.raises(InvalidInputError, match="KeypointNetwork"):
        parameter_counts(nn.Conv2d(1, 1, 1))


def test_full_size_outputs_are_at_stride_4_in_range_and_start_at_the_prior(full_size):
    outputs, _ = full_size
    _check_outputs(outputs, 1, 64, 128)


def test_small_arch_outputs_at_a_smaller_input():
    torch.manual_seed(0)
    with torch.no_grad():
        outputs = build_network(SMALL_ARCH)(torch.rand(2, 4, 64, 128))
    _check_outputs(outputs, 2, 16, 32)


@pytest.mark.parametrize("shape", [(1, 4, 64, 100), (1, 4, 48, 128), (1, 3, 64, 128), (4, 64, 128)])
def test_forward_refuses_shapes_it_cannot_map_to_stride_4(shape):
    with pytest.raises(InvalidInputError, match=r"multiples of 32, got shape"):
        build_network(SMALL_ARCH)(torch.zeros(shape))


def test_flops_per_image_at_256x512(full_size):
    _, flops = full_size
    # FlopCounterMode counts a multiply-add as 2 FLOPs: one 1x1 conv of one weight on one pixel is 2.
    with FlopCounterMode(display=False) as unit:
        nn.Conv2d(1, 1, 1, bias=False)(torch.zeros(1, 1, 1, 1))
    assert unit.get_total_flops() == 2
    gmacs = flops / 2e9
    print(f"\nlhrnet 256x512: {flops / 1e9:.2f} GFLOPs = {gmacs:.2f} GMACs per image "
          f"(SPEC says about {SPEC_GFLOPS} GFLOPs: {flops / 1e9 / SPEC_GFLOPS:.0f}x as FLOPs, "
          f"{gmacs / SPEC_GFLOPS:.0f}x as MACs)")
    # The SPEC's figure is not reachable with its own layers: the head's four stride-4 3x3 128->64 convs
    # alone are 2.42 GMACs. The band pins the cost of the layout instead, so a layer moved to another
    # resolution (or dropped) shows up here.
    head_gmacs = 4 * (128 * 64 * 9) * (64 * 128) / 1e9
    assert gmacs > head_gmacs > SPEC_GFLOPS
    assert gmacs == pytest.approx(DEFAULT_GMACS, rel=0.05)


def test_check_arch_completes_with_defaults_and_lists():
    merged = check_arch({"widths": (8, 16, 32, 64)})
    assert merged == {**DEFAULT_ARCH, "widths": [8, 16, 32, 64]}
    assert check_arch({}) == DEFAULT_ARCH and check_arch({}) is not DEFAULT_ARCH


def test_check_arch_refuses_unknown_keys():
    with pytest.raises(ModelLoadError, match=r"\['base_width'\]"):
        check_arch({"base_width": 64})


@pytest.mark.parametrize("key, value, expected", [
    ("widths", [32, 32, 128, 256], "strictly increasing"),
    ("widths", [256, 128, 64, 32], "strictly increasing"),
    ("widths", [32, 64, 128], "list of 4 positive integers"),
    ("widths", [0, 64, 128, 256], "list of 4 positive integers"),
    ("widths", "32", "list of 4 positive integers"),
    ("blocks", [2, 3], "list of 3 positive integers"),
    ("blocks", [2, -1, 2], "list of 3 positive integers"),
    ("stem_blocks", 0, "positive integer"),
    ("fpn_channels", -128, "positive integer"),
    ("head_channels", 64.0, "positive integer"),
    ("expand", True, "positive integer"),
    ("in_channels", None, "positive integer"),
])
def test_check_arch_refuses_bad_values(key, value, expected):
    with pytest.raises(InvalidInputError, match=f"{key} must be .*{expected}"):
        check_arch({key: value})


def test_check_arch_refuses_a_non_mapping():
    with pytest.raises(InvalidInputError, match="must be a dict, got list"):
        check_arch([("widths", [8, 16, 32, 64])])


def test_channels_last_and_bf16_autocast_match_fp32():
    network = _calibrated_small()
    x = torch.rand(2, 4, 64, 128)
    with torch.no_grad():
        reference = network(x)
        network = network.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
        channels_last = network(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = network(x)
    for name in OUTPUT_NAMES:
        torch.testing.assert_close(channels_last[name], reference[name], atol=1e-5, rtol=1e-4)
        assert bf16[name].dtype == torch.float32 and torch.isfinite(bf16[name]).all(), name
        torch.testing.assert_close(bf16[name], reference[name], atol=0.05, rtol=0), name
    torch.testing.assert_close(bf16["angle"].norm(dim=1), torch.ones(2, 16, 32))


def test_training_steps_give_finite_gradients_everywhere_and_lower_the_loss():
    torch.manual_seed(0)
    network = build_network(SMALL_ARCH)
    x = torch.rand(2, 4, 32, 64)
    target = {name: torch.rand(2, 2, 8, 16) - 0.5 for name in OUTPUT_NAMES}
    target["heatmap_slot"] = target["heatmap_part"] = torch.zeros(2, 1, 8, 16)
    target["angle"] = nn.functional.normalize(target["angle"], dim=1)
    optimizer = torch.optim.AdamW(network.parameters(), lr=3e-3)
    losses = []
    for _ in range(4):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            outputs = network(x)
        loss = sum(nn.functional.l1_loss(outputs[name], target[name]) for name in OUTPUT_NAMES)
        optimizer.zero_grad()
        loss.backward()
        for name, p in network.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    assert network.fpn.fusion_weights.grad.abs().sum() > 0  # the learned fusion weights take part


def test_onnx_export_matches_pytorch():
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    network = _calibrated_small()
    # The same call as export._onnx.export_module: TorchScript exporter, opset 17, dynamic batch.
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(network, (torch.rand(1, 4, 64, 128),), buffer, dynamo=False, opset_version=17,
                          input_names=["image"], output_names=list(OUTPUT_NAMES),
                          dynamic_axes={name: {0: "batch"} for name in ("image", *OUTPUT_NAMES)},
                          do_constant_folding=True)
    model = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(model)
    assert not {"If", "Loop"} & {node.op_type for node in model.graph.node}  # no control flow was traced
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 4, 64, 128)  # another batch size than the traced one
    with torch.no_grad():
        expected = network.eval()(x)
    got = session.run(list(OUTPUT_NAMES), {"image": x.numpy()})
    for name, value in zip(OUTPUT_NAMES, got):
        assert value.shape == tuple(expected[name].shape), name
        np.testing.assert_allclose(value, expected[name].numpy(), atol=1e-4, rtol=0, err_msg=name)
