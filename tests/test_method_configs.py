"""Every registered method's Config: YAML round trips, and its YAML defaults file matches the dataclass."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

import methods
from actionbench.errors import ActionBenchError
from methods.defaults import defaults_file

NAMES = sorted(methods.available())


@pytest.mark.parametrize("name", NAMES)
def test_defaults_file_matches_dataclass(name):
    cls = methods.get_method(name).Config
    path = defaults_file(name)
    assert path.is_file(), f"{path} missing: every method ships its YAML defaults"
    data = yaml.safe_load(path.read_text())
    assert set(data) == {f.name for f in dataclasses.fields(cls)}, "the YAML lists every setting"
    assert cls.from_yaml(path) == cls()


def _changed(config):
    """A valid config differing from the defaults in the fields shared by all (and steps/seed)."""
    return config.with_overrides(seed=config.seed + 7, steps=config.steps + 1, checkpoint_every=5, resolution=256)


@pytest.mark.parametrize("name", NAMES)
def test_yaml_round_trip(name, tmp_path):
    cls = methods.get_method(name).Config
    for config in (cls(), _changed(cls())):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=True))
        again = cls.from_yaml(path)
        assert again == config and type(again) is cls
        assert cls.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("name", NAMES)
def test_unknown_setting_is_an_error(name, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("no_such_setting: 1\n")
    with pytest.raises(ActionBenchError, match="no_such_setting"):
        methods.get_method(name).Config.from_yaml(path)


@pytest.mark.parametrize(
    "name,bad",
    [
        ("dreambooth", {"lora_rank": 0}),
        ("dreambooth", {"num_class_images": 0}),
        ("custom-diffusion", {"layerwise": True}),
        ("reversion", {"temperature": 0.0}),
        ("reversion", {"alpha": 1.0}),
        ("controlnet", {"detector": "kinect"}),
        ("adi", {"mask": "nope"}),
    ],
)
def test_invalid_values_are_refused(name, bad):
    with pytest.raises(ActionBenchError):
        methods.get_method(name).Config(**bad)
