"""A sweep axis must change what the trials train; one that changes nothing is refused first."""

from __future__ import annotations

import pytest

from dlrecap.errors import ConfigError
from dlrecap.sweep.plan import plan_sweep

BASE = """\
data: {dataset: xor, samples: 40}
model:
  layers: [{units: 4, activation: tanh}]
training: {epochs: 2}
"""


def config(tmp_path, extra: str = "") -> str:
    path = tmp_path / "c.yaml"
    path.write_text(BASE + extra, encoding="utf-8")
    return str(path)


def test_a_shadowed_axis_is_refused_before_anything_trains(tmp_path):
    with pytest.raises(ConfigError) as info:
        plan_sweep(config(tmp_path), grid=["model.activation=relu,sigmoid"], jobs=1)
    assert "changes nothing" in info.value.message and info.value.exit_code == 2
    assert info.value.source == "--grid model.activation=relu,sigmoid"
    assert not (tmp_path / "runs").exists()


def test_a_shadowed_axis_in_the_file_points_at_its_line(tmp_path):
    path = config(tmp_path, "sweep:\n  grid:\n    model.activation: [relu, sigmoid]\n")
    with pytest.raises(ConfigError) as info:
        plan_sweep(path, jobs=1)
    assert info.value.key == "sweep.grid.model.activation[0]" and info.value.line == 7


def test_a_shadowed_range_is_refused(tmp_path):
    path = config(tmp_path)
    (tmp_path / "c.yaml").write_text(BASE.replace("activation: tanh", "activation: tanh, dropout: 0.2"),
                                     encoding="utf-8")
    with pytest.raises(ConfigError, match="changes nothing"):
        plan_sweep(path, ranges=["model.dropout=0.1:0.5"], search="random", trials=2, jobs=1)


@pytest.mark.parametrize("axis", ["model.layers[0].activation=relu,sigmoid", "seed=0,1",
                                  "model.dropout=0.1,0.3"])
def test_axes_that_take_effect_are_planned(tmp_path, axis):
    text = "" if "dropout" not in axis else "  # a second layer without its own dropout takes it\n"
    path = config(tmp_path, text)
    if "dropout" in axis:
        (tmp_path / "c.yaml").write_text(BASE.replace("activation: tanh}]", "activation: tanh}, 4]"),
                                         encoding="utf-8")
    plan = plan_sweep(path, grid=[axis], jobs=1)
    assert len(plan.trials) == 2
