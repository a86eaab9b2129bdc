"""``opifex train CONFIG.yaml``: train a built-in problem from a YAML config.

    opifex train configs/burgers_pinn.yaml
    opifex train configs/burgers_rad.yaml --set training.num_epochs=500 --run-dir runs/try

A config has these sections (only ``problem`` is required; shipped, commented examples
live in ``configs/``):

``problem``
    ``name``: ``burgers``, ``heat``, ``poisson``, ``allen_cahn`` (PINNs),
    ``fno-burgers`` or ``fno-darcy`` (operators): a name of the problem registry,
    ``opifex.problems.registry``. PINNs take ``n_collocation``, operators ``n_train``,
    ``n_test`` and ``grid``.
``model``
    PINNs: ``hidden`` (list of widths), ``activation``, ``type`` (``mlp`` or ``modified``,
    the modified MLP; for Allen-Cahn behind an exact periodic embedding in ``x`` with
    ``harmonics`` harmonics). Operators: ``modes``, ``width``, ``padding`` (Darcy) of the FNO.
``physics``
    PINNs: ``PhysicsLossConfig`` fields (term weights, ``adaptive_weighting``,
    ``causal_chunks`` and ``causal_epsilon`` for causal training, ...).
``trainer``
    ``type``: ``basic`` (default) or ``modular`` (``ModularTrainer`` with an
    ``ErrorRecoveryManager``; ``error_recovery`` holds its config, e.g. ``{max_retries: 5}``).
``training``
    ``TrainingConfig`` fields, as ``TrainingConfig.to_dict`` writes them (``num_epochs``,
    ``learning_rate``, ``optimizer``, ``stages``, ``boundary_config``,
    ``conservation_config``, ``logging_config``, ...). Unknown fields are errors.
``sampling``
    PINNs only: ``method: rad`` or ``method: rard`` and the fields of ``RADConfig`` /
    ``RARDConfig``.
``multilevel``
    ``MultilevelConfig`` (PINNs) or ``MultilevelFNOConfig`` (operators) fields; the model
    section describes the finest level.
``seed`` (default 0) seeds the model and the problem; ``run_dir`` (default
``runs/<config name>``) receives the config, metrics, history, checkpoints and
``result.json`` with the error on the problem's reference.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from typing import Any

import yaml

from opifex.problems import registry

SECTIONS = (
    "problem",
    "model",
    "physics",
    "trainer",
    "training",
    "sampling",
    "multilevel",
    "seed",
    "run_dir",
)
#: the problem registry's names, by kind (``opifex.problems.registry``)
PINN_PROBLEMS = tuple(registry.names("pinn"))
FNO_PROBLEMS = tuple(registry.names("operator"))


def _section(cfg: dict, name: str) -> dict:
    value = cfg.get(name) or {}
    if not isinstance(value, dict):
        raise ValueError(f"config section {name!r} must be a mapping, got {type(value).__name__}")
    return dict(value)


def _take(section: dict, name: str, allowed: tuple[str, ...]) -> dict:
    unknown = sorted(set(section) - set(allowed))
    if unknown:
        raise ValueError(
            f"config section {name!r}: unknown key(s) {unknown}; allowed: {list(allowed)}"
        )
    return section


def _make(cls, name: str, section: dict):
    """``cls(**section)`` with unknown keys reported against the config section's name."""
    import dataclasses

    fields = [f.name for f in dataclasses.fields(cls) if f.init]
    _take(section, name, tuple(fields))
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in section.items()})


def apply_overrides(cfg: dict, overrides: list[str]) -> dict:
    """``section.key=value`` overrides (values parsed as YAML) applied to a copy of ``cfg``."""
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: write KEY.PATH=VALUE, e.g. training.num_epochs=100")
        path, raw = item.split("=", 1)
        keys = path.split(".")
        node = cfg
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {item!r}: {k!r} is not a section")
        node[keys[-1]] = yaml.safe_load(raw)
    return cfg


def build(cfg: dict, run_dir: str | None = None) -> dict[str, Any]:
    """Validate ``cfg`` and assemble the run: trainer, train call arguments and scorer."""
    from flax import nnx

    from opifex.core.training.config import TrainingConfig

    unknown = sorted(set(cfg) - set(SECTIONS))
    if unknown:
        raise ValueError(f"config: unknown section(s) {unknown}; allowed: {list(SECTIONS)}")
    problem_cfg = _section(cfg, "problem")
    name = problem_cfg.pop("name", None)
    if name not in PINN_PROBLEMS + FNO_PROBLEMS:
        raise ValueError(
            f"problem.name: {name!r} is not a built-in problem; choose one of "
            f"{list(PINN_PROBLEMS + FNO_PROBLEMS)}"
        )
    seed = int(cfg.get("seed", 0))
    training = _section(cfg, "training")
    training.setdefault("seed", seed)
    if run_dir is not None or "run_dir" in cfg:
        training["run_dir"] = run_dir or cfg["run_dir"]
    config = TrainingConfig.from_dict(training)
    model_cfg = _section(cfg, "model")
    trainer_cfg = _section(cfg, "trainer")
    _take(trainer_cfg, "trainer", ("type", "error_recovery"))
    sampling_cfg = _section(cfg, "sampling")
    physics_cfg = _section(cfg, "physics")
    ml_cfg = _section(cfg, "multilevel")
    kind = trainer_cfg.get("type", "basic")
    if kind not in ("basic", "modular"):
        raise ValueError(f"trainer.type: {kind!r}; choose 'basic' or 'modular'")

    def trainer_class():
        from opifex.training.basic_trainer import BasicTrainer, ModularTrainer
        from opifex.training.recovery import ErrorRecoveryManager

        if kind == "basic":
            if "error_recovery" in trainer_cfg:
                raise ValueError("trainer.error_recovery needs trainer.type: modular")
            return BasicTrainer, {}
        recovery = ErrorRecoveryManager(trainer_cfg.get("error_recovery") or {})
        return ModularTrainer, {"components": {"error_recovery": recovery}}

    if name in PINN_PROBLEMS:
        _take(problem_cfg, "problem", ("n_collocation",))
        if physics_cfg:
            from opifex.core.physics.losses import PhysicsLossConfig

            loss_config = _make(PhysicsLossConfig, "physics", physics_cfg)
            problem_cfg = {**problem_cfg, "loss_config": loss_config}
        return _build_pinn(
            name, problem_cfg, model_cfg, sampling_cfg, ml_cfg, config, seed, trainer_class, nnx
        )
    if sampling_cfg:
        raise ValueError("sampling: collocation samplers apply to PINN problems only")
    if physics_cfg:
        raise ValueError("physics: the physics-loss config applies to PINN problems only")
    return _build_fno(name, problem_cfg, model_cfg, ml_cfg, config, seed, trainer_class, nnx)


def _build_pinn(
    name, problem_cfg, model_cfg, sampling_cfg, ml_cfg, config, seed, trainer_class, nnx
):
    import dataclasses

    from opifex.problems import pinn_set

    _take(model_cfg, "model", ("hidden", "activation", "type", "harmonics"))
    spec = registry.get(name)
    problem, (gx, gu), layers = spec.build(seed, **problem_cfg)
    parameters, observations = pinn_set.unknowns(name)  # (None, None): a forward problem
    if "hidden" in model_cfg:
        layers = [layers[0], *model_cfg["hidden"], layers[-1]]
    activation = model_cfg.get("activation", "tanh")
    net_type = model_cfg.get("type", "mlp")
    if net_type not in ("mlp", "modified", "embedded"):
        raise ValueError(f"model.type: {net_type!r}; choose 'mlp', 'modified' or 'embedded'")
    callbacks = []
    if sampling_cfg:
        from opifex.training.adaptive_sampling import (
            RADConfig,
            RADSampler,
            RARDConfig,
            RARDRefiner,
        )

        method = sampling_cfg.pop("method", None)
        if method == "rad":
            callbacks.append(RADSampler(problem.domain, _make(RADConfig, "sampling", sampling_cfg)))
        elif method == "rard":
            rard = _make(RARDConfig, "sampling", sampling_cfg)
            callbacks.append(RARDRefiner(problem.domain, rard))
        else:
            raise ValueError(f"sampling.method: {method!r}; choose 'rad' or 'rard'")
        problem = dataclasses.replace(problem, sampling="uniform")
    if ml_cfg:
        if parameters is not None:
            raise ValueError(
                f"multilevel: {name!r} is an inverse problem, and the coarse-to-fine "
                "hierarchy does not train PDE parameters; drop the multilevel section"
            )
        if net_type != "mlp":
            raise ValueError(
                "multilevel: the coarse-to-fine hierarchy is built of plain MLPs; use "
                "model.type: mlp (or drop the multilevel section)"
            )
        from opifex.training.multilevel.coarse_to_fine import (
            CascadeTrainer,
            MultilevelConfig,
            create_network_hierarchy,
        )

        ml = _make(MultilevelConfig, "multilevel", ml_cfg)
        nets = create_network_hierarchy(layers, ml, activation=activation, rngs=nnx.Rngs(seed))
        trainer = CascadeTrainer(nets, config, ml, callbacks=callbacks)
    else:
        cls, kw = trainer_class()
        model = pinn_set.network(
            name,
            layers,
            seed,
            model=net_type,
            activation=activation,
            harmonics=model_cfg.get("harmonics", 10),
        )
        if parameters is not None:
            kw = {**kw, "parameters": parameters}
        trainer = cls(model, config, callbacks=callbacks, **kw)

    train_kwargs = {"problem": problem, "val_data": (gx, gu)}
    if observations is not None:
        train_kwargs["observations"] = observations

    def score(model):
        return pinn_set.score(name, model(gx), gu, parameters)

    return {
        "trainer": trainer,
        "train_kwargs": train_kwargs,
        "score": score,
        "description": f"{name} PINN, {net_type} {layers} {activation}",
    }


def _build_fno(name, problem_cfg, model_cfg, ml_cfg, config, seed, trainer_class, nnx):
    from opifex.neural.operators import FNO
    from opifex.problems import operator_set

    _take(problem_cfg, "problem", ("n_train", "n_test", "grid"))
    _take(model_cfg, "model", ("modes", "width", "padding", "n_layers"))
    spec = registry.get(name)
    d = spec.defaults
    n_train = problem_cfg.get("n_train", d["n_train"])
    n_test = problem_cfg.get("n_test", d["n_test"])
    grid = problem_cfg.get("grid", d["grid"])
    train, test = spec.build(n_train, n_test, grid)
    modes = model_cfg.get("modes", d["modes"])
    width = model_cfg.get("width", d["width"])
    kw = {"width": width, "n_layers": model_cfg.get("n_layers", 4)}
    in_ch, mode_t = d["in_channels"], (modes,) * d["spatial_dims"]
    if d.get("grid_channels"):
        kw.update(grid_channels=True, padding=model_cfg.get("padding", d["padding"]))
    if ml_cfg:
        from opifex.training.multilevel.multilevel_fno import (
            MultilevelFNOConfig,
            MultilevelFNOTrainer,
            create_fno_hierarchy,
        )

        ml = _make(MultilevelFNOConfig, "multilevel", ml_cfg)
        nets = create_fno_hierarchy(in_ch, 1, mode_t, ml, rngs=nnx.Rngs(seed), **kw)
        trainer = MultilevelFNOTrainer(nets, config, ml)
    else:
        cls, tkw = trainer_class()
        trainer = cls(FNO(in_ch, 1, modes=mode_t, rngs=nnx.Rngs(seed), **kw), config, **tkw)

    def score(model):
        return {"mean_relative_l2": operator_set.score(model, *test)}

    return {
        "trainer": trainer,
        "train_kwargs": {"train_data": train, "val_data": test},
        "score": score,
        "description": f"{name}: FNO modes {mode_t}, width {width}, {n_train} pairs on {grid}",
    }


def run(cfg: dict, run_dir: str | None = None) -> dict:
    """Train the config's problem; returns the result (also written to ``run_dir``)."""
    return train_built(build(cfg, run_dir), cfg)


def train_built(parts: dict, cfg: dict) -> dict:
    """Run what :func:`build` assembled; write ``train_config.yaml`` and ``result.json``."""
    from opifex.training.utils import count_parameters

    trainer = parts["trainer"]
    t0 = time.perf_counter()
    model, history = trainer.train(**parts["train_kwargs"])
    seconds = time.perf_counter() - t0
    result = {
        "description": parts["description"],
        "seconds": seconds,
        "epochs": len(history["train_loss"]),
        "parameters": count_parameters(model),
        "final_train_loss": float(history["train_loss"][-1]),
        **parts["score"](model),
    }
    out = trainer.config.run_dir
    if out is not None:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "train_config.yaml"), "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
        with open(os.path.join(out, "result.json"), "w") as f:
            json.dump(result, f, indent=1)
    result["run_dir"] = out
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="opifex train",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("config", help="a YAML config (see configs/)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="override a config value, e.g. training.num_epochs=100 (repeatable)",
    )
    p.add_argument("--run-dir", default=None, help="output folder (default runs/<config name>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    with open(args.config) as f:
        cfg = yaml.safe_load(f) or {}
    if not isinstance(cfg, dict):
        p.error(f"{args.config}: the top level must be a mapping of sections")
    try:
        cfg = apply_overrides(cfg, args.set)
        if args.quiet:
            cfg = apply_overrides(cfg, ["training.verbose=false"])
        run_dir = (
            args.run_dir
            or cfg.get("run_dir")
            or os.path.join("runs", os.path.splitext(os.path.basename(args.config))[0])
        )
        parts = build(cfg, run_dir)
    except ValueError as e:
        print(f"opifex train: {args.config}: {e}", file=sys.stderr)
        return 2
    result = train_built(parts, cfg)
    # the scorer's metrics (the errors, and an inverse problem's recovered coefficients)
    bookkeeping = ("description", "seconds", "epochs", "parameters", "final_train_loss", "run_dir")
    metrics = ", ".join(f"{k} {v:.3e}" for k, v in result.items() if k not in bookkeeping)
    print(f"opifex train: {result['description']} ({result['parameters']:,} parameters)")
    print(f"  {result['epochs']} epochs in {result['seconds']:.1f} s; {metrics}")
    print(f"  run directory: {os.path.abspath(result['run_dir'])}")
    return 0
