"""The contract every registered training family keeps (parametrized: a new family is tested for free)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from runtime.core import InvalidInputError, ModelLoadError, get_family
from training import Direction, TrainingFamily, get_training_family, list_training_families
from training.smoke import sample_images


@pytest.fixture(params=list_training_families())
def family(request) -> TrainingFamily:
    return get_training_family(request.param)


def test_registered_under_its_own_name_next_to_its_runtime_part(family):
    assert isinstance(family, TrainingFamily)
    assert family.runtime is get_family(family.name) and family.runtime.name == family.name
    metric, direction = family.selection_metric
    assert metric == family.runtime.selection_metric[0] and isinstance(direction, Direction)
    assert list(family.variants()) == list(family.runtime.variants()) and family.variants()


def test_unknown_variant_is_refused(family):
    assert family.check_variant(None) == family.variants()[0]
    with pytest.raises(InvalidInputError, match=f"unknown variant 'nope' for family '{family.name}'; expected one of"):
        family.check_variant("nope")


def test_default_arch_builds_and_bad_arch_is_refused(family):
    network = family.build_network(family.default_arch())
    assert isinstance(network, torch.nn.Module)
    assert family.arch_from_options(family.default_options()) == family.default_arch()
    with pytest.raises(ModelLoadError, match="unknown keys"):
        family.build_network({**family.default_arch(), "no_such_setting": 1})
    key = next(iter(family.default_arch()))
    with pytest.raises(InvalidInputError, match=key):
        family.build_network({**family.default_arch(), key: -1})


def test_checkpoint_fields_are_primitives_that_give_back_the_variant(family):
    arch = family.default_arch()
    for variant in family.variants():
        fields = family.checkpoint_fields(variant, arch)
        assert set(fields) == set(family.required_checkpoint_keys)
        json.dumps(fields)
        assert family.variant_of(fields) == variant


def test_flags_round_trip_to_the_default_options(family):
    parser = argparse.ArgumentParser()
    family.add_arguments(parser)
    assert family.options_from_args(parser.parse_args([])) == family.default_options()
    dataset_parser = argparse.ArgumentParser()
    family.add_dataset_arguments(dataset_parser)
    assert family.dataset_options_from_args(dataset_parser.parse_args([])) == family.default_dataset_options()


def test_tiny_config_is_valid_and_small(family):
    tiny = family.tiny_config()
    assert family.check_options(tiny.options) is tiny.options
    assert isinstance(tiny.dataset, family.dataset_options_type)
    assert tiny.epochs * tiny.steps_per_epoch <= 50 and tiny.batch_size <= 16
    network = family.build_network(family.arch_from_options(tiny.options))
    assert sum(p.numel() for p in network.parameters()) < 200_000


def test_synthetic_samples_fit_the_input_contract(family):
    variant = family.variants()[0]
    spec = family.runtime.input_spec(variant)
    images, labels = family.synthetic_samples(variant, 3, seed=5)
    assert images.dtype == np.float32 and images.ndim == 4 and len(images) == len(labels) == 3
    assert images.shape[1] == len(spec.read_channels)
    if spec.resize == "exact":
        assert images.shape[2:] == (spec.height, spec.width)
    low, high = spec.source_range
    assert low <= images.min() and images.max() <= high
    again, again_labels = family.synthetic_samples(variant, 3, seed=5)
    np.testing.assert_array_equal(images, again)
    for label, same in zip(labels, again_labels):  # arrays, or dataclasses holding arrays
        np.testing.assert_equal(getattr(label, "__dict__", label), getattr(same, "__dict__", same))
    assert not np.array_equal(family.synthetic_samples(variant, 1, seed=6)[0][0], images[0])


def test_sample_images_are_source_images(family):
    images = sample_images(family.name, 2, seed=0)
    assert len(images) == 2 and all(i.ndim == 3 and i.dtype == np.float32 and i.flags.c_contiguous for i in images)
    np.testing.assert_array_equal(images[0], family.synthetic_samples(family.variants()[0], 2, seed=0)[0][0])


def test_training_samples_are_a_pure_function_of_seed_epoch_and_index(family_name, family_dataset):
    family = get_training_family(family_name)
    variant, options = family.variants()[0], family.tiny_config().options

    def sample(epoch, index, seed=0):
        dataset = family.train_dataset(family_dataset, variant, options, 4, seed)
        dataset.set_epoch(epoch)
        return dataset[index]

    assert len(family.train_dataset(family_dataset, variant, options, 4, 0)) == 4
    assert family.epoch_length(family_dataset, variant, options) >= 1
    for a, b in zip(sample(1, 2), sample(1, 2)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(sample(1, 2)[0], sample(2, 2)[0])
    assert not torch.equal(sample(1, 2)[0], sample(1, 3)[0])


def test_evaluation_returns_the_selection_metric(family_name, family_run, family_dataset):
    from training.checkpoint import build_from_checkpoint, load_checkpoint

    family, network = build_from_checkpoint(load_checkpoint(family_run.best))
    split, _ = family.evaluation_splits(family_dataset)
    metrics = family.evaluate(network, family_dataset, split, family.variants()[0])
    assert family.selection_metric[0] in metrics and all(np.isfinite(v) for v in metrics.values())
    assert metrics == family_run.metrics, "evaluation is deterministic and matches what training reported"


def test_is_better_follows_the_direction(family):
    metric, direction = family.selection_metric
    guard = family.defaults.guard_metric  # a tie-breaker the metrics must also hold
    low, high = ({metric: value, **({guard: 1.0} if guard else {})} for value in (0.25, 0.75))
    assert family.is_better(low, {}) and not family.is_better({**low, metric: float("nan")}, {})
    assert family.is_better(high, low) is (direction is Direction.MAX)
    assert family.is_better(low, high) is (direction is Direction.MIN)
    assert not family.is_better(low, low)
    with pytest.raises(InvalidInputError, match=f"returned \\['something_else'\\], without '{metric}'"):
        family.is_better({"something_else": 1.0}, {})


def test_every_reported_metric_has_a_direction(family_name, family_run):
    family = get_training_family(family_name)
    for name in family_run.metrics:
        assert isinstance(family.metric_direction(name), Direction)
    with pytest.raises(InvalidInputError, match=f"family '{family_name}' reports no metric 'nope'"):
        family.metric_direction("nope")


def test_pictures_are_rgb_figures(family_name, family_run, family_dataset):
    from training.checkpoint import build_from_checkpoint, load_checkpoint

    family, network = build_from_checkpoint(load_checkpoint(family_run.best))
    split, _ = family.evaluation_splits(family_dataset)
    pictures = family.pictures(network, family_dataset, split, family.variants()[0], 2)
    assert len(pictures) <= 2
    for name, picture in pictures:
        assert isinstance(name, str) and name
        assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3


def test_option_fields_are_flag_names(family):
    """config.yaml stores the options under their field names; --config feeds them back as flags."""
    parser = argparse.ArgumentParser()
    family.add_arguments(parser)
    import dataclasses

    fields = {f.name for f in dataclasses.fields(family.options_type)}
    assert fields <= {action.dest for action in parser._actions}
