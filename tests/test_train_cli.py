"""``opifex train CONFIG.yaml``: config validation, overrides, and real (small) runs."""

import glob
import json
import os

import pytest
import yaml

from opifex.cli import main as cli_main
from opifex.train_cli import apply_overrides, build

CONFIGS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "configs", "*.yaml")))


def load(name):
    with open(os.path.join(os.path.dirname(__file__), "..", "configs", name)) as f:
        return yaml.safe_load(f)


def test_overrides_parse_yaml_values():
    cfg = apply_overrides({"training": {"num_epochs": 5}}, ["training.num_epochs=7", "a.b=[1, 2]"])
    assert cfg == {"training": {"num_epochs": 7}, "a": {"b": [1, 2]}}
    with pytest.raises(ValueError, match="KEY.PATH=VALUE"):
        apply_overrides({}, ["training.num_epochs"])


@pytest.mark.parametrize(
    "cfg, match",
    [
        ({"problem": {"name": "waves"}}, "problem.name: 'waves'"),
        ({"problem": {"name": "heat"}, "model": {"type": "embedded"}}, "has none"),
        (
            {"problem": {"name": "inverse_diffusion"}, "multilevel": {"num_levels": 2}},
            "inverse problem",
        ),
        ({"problem": {"name": "heat"}, "oops": 1}, "unknown section"),
        ({"problem": {"name": "heat", "grid": 3}}, "section 'problem': unknown key"),
        ({"problem": {"name": "heat"}, "sampling": {"method": "rad", "kk": 1}}, "'sampling'"),
        ({"problem": {"name": "heat"}, "sampling": {"method": "magic"}}, "sampling.method"),
        ({"problem": {"name": "heat"}, "training": {"num_epoch": 1}}, "num_epoch"),
        ({"problem": {"name": "heat"}, "trainer": {"type": "fancy"}}, "trainer.type"),
        ({"problem": {"name": "fno-darcy"}, "sampling": {"method": "rad"}}, "PINN problems"),
        ({"problem": {"name": "heat"}, "physics": {"causal": 3}}, "section 'physics'"),
        ({"problem": {"name": "heat"}, "physics": {"causal_chunks": -1}}, "causal_chunks"),
        ({"problem": {"name": "fno-darcy"}, "physics": {"causal_chunks": 4}}, "PINN problems"),
        ({"problem": {"name": "heat"}, "model": {"type": "resnet"}}, "model.type"),
        (
            {
                "problem": {"name": "heat"},
                "model": {"type": "modified"},
                "multilevel": {"num_levels": 2},
            },
            "model.type: mlp",
        ),
    ],
)
def test_bad_configs_name_what_to_change(cfg, match):
    with pytest.raises(ValueError, match=match):
        build(cfg)


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_every_shipped_config_builds(path):
    with open(path) as f:
        cfg = yaml.safe_load(f)
    parts = build(
        apply_overrides(cfg, ["problem.n_train=30", "problem.n_test=5", "problem.grid=22"])
        if cfg["problem"]["name"].startswith("fno")
        else cfg
    )
    assert callable(parts["score"]) and parts["trainer"].config.num_epochs > 0


def test_train_a_pinn_config_end_to_end(tmp_path, capsys):
    cfg = load("heat_modular.yaml")
    cfg = apply_overrides(
        cfg,
        [
            "training.num_epochs=300",
            "training.stages=[]",
            "training.validation_frequency=100",
            "problem.n_collocation=256",
        ],
    )
    path = tmp_path / "heat.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run_dir = tmp_path / "run"
    assert cli_main(["train", str(path), "--run-dir", str(run_dir), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "relative_l2" in out
    result = json.loads((run_dir / "result.json").read_text())
    history = json.loads((run_dir / "history.json").read_text())["series"]
    assert result["epochs"] == 300
    assert history["train_loss"][-1] < 0.1 * history["train_loss"][0]  # it trained
    assert 0 < result["relative_l2"] < 0.5
    saved = yaml.safe_load((run_dir / "train_config.yaml").read_text())
    assert saved["training"].pop("verbose") is False  # --quiet
    assert saved == cfg  # the config as run, overrides included


def test_allen_cahn_config_builds_the_causal_recipe():
    from opifex.neural.pinn import ModifiedMLP, PeriodicEmbedding

    parts = build(load("allen_cahn_causal.yaml"))
    trainer = parts["trainer"]
    assert isinstance(trainer.model, ModifiedMLP)
    assert isinstance(trainer.model.embedding, PeriodicEmbedding)
    problem = parts["train_kwargs"]["problem"]
    assert problem.loss_config.causal_chunks == 32
    assert problem.loss_config.causal_epsilon == 100.0
    (sampler,) = [c for c in trainer.components if getattr(c, "is_collocation_sampler", False)]
    assert sampler.config.k == 0.0 and sampler.period == 1


def test_train_rejects_a_bad_config_with_status_2(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("problem: {name: heat}\ntraining: {num_epoch: 3}\n")
    assert cli_main(["train", str(path)]) == 2
    assert "num_epoch" in capsys.readouterr().err


def test_an_inverse_config_trains_its_coefficient_and_reports_it(tmp_path, capsys):
    from opifex.core.physics.parameters import ModelWithParameters

    small = ["training.num_epochs=200", "training.stages=[]", "problem.n_collocation=128"]
    cfg = apply_overrides(load("inverse_diffusion.yaml"), small)
    parts = build(cfg)
    assert isinstance(parts["trainer"].model, ModelWithParameters)
    xo, uo = parts["train_kwargs"]["observations"]
    assert xo.shape == (10, 2)
    path = tmp_path / "inverse.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert cli_main(["train", str(path), "--run-dir", str(tmp_path / "run"), "--quiet"]) == 0
    assert "C_error" in capsys.readouterr().out  # printed beside the error
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    history = json.loads((tmp_path / "run" / "history.json").read_text())["series"]
    # C trained (it moves from 2.0; recovery itself is tested in tests/training/test_inverse.py)
    # and the result reports where it ended and its error against the truth, 1.0
    assert result["C"] == pytest.approx(history["param_C"][-1]) and abs(result["C"] - 2.0) > 1e-2
    assert result["C_error"] == pytest.approx(abs(result["C"] - 1.0))
