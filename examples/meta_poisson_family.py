"""A family of PINN tasks: start a new task from the solved ones (MetaOptimizer).

1-D Poisson ``-u'' = (w pi)^2 sin(w pi x)`` on [0, 1] for source frequencies ``w``. The
training frequencies are solved once by continuation
(``MetaOptimizer.meta_train_conditioned``); a held-out frequency then starts from their
parameters interpolated at its ``w`` (``meta.for_task``), and is compared with Adam from
a standard initialisation at equal steps. The optimizer is saved and loaded with orbax.

    python examples/meta_poisson_family.py      # about 1 min; OPIFEX_SMALL=1: seconds
"""

import os
import tempfile

from flax import nnx

from opifex.core.training.config import TrainingConfig
from opifex.core.training.physics_configs import BoundaryConfig
from opifex.neural.base import StandardMLP
from opifex.optimization import MetaOptimizer, poisson_family
from opifex.training import BasicTrainer

SMALL = os.environ.get("OPIFEX_SMALL") == "1"
STEPS = 300 if SMALL else 4000  # per training task (twice that for the first)
HELD_OUT_STEPS = 300 if SMALL else 2000

config = TrainingConfig(
    learning_rate=1e-3, boundary_config=BoundaryConfig(enforcement="soft"), verbose=False
)


def network(seed=0):
    return StandardMLP([1, 32, 32, 1], activation="tanh", rngs=nnx.Rngs(seed))


train_tasks = poisson_family([1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0])
(held_out,) = poisson_family([2.25])

meta = MetaOptimizer()  # the default rule: hypergradient-adapted Adam
record = meta.meta_train_conditioned(train_tasks, network(), steps=STEPS, config=config)
for entry in record.iterations:
    print(f"anchor {entry['name']}: relative L2 {entry['val_relative_l2']:.2e}")
print(f"continuation over {len(train_tasks)} tasks: {record.seconds:.1f} s")

with tempfile.TemporaryDirectory() as tmp:
    meta.save(os.path.join(tmp, "poisson_family"))
    meta = MetaOptimizer.load(os.path.join(tmp, "poisson_family"))
print(meta)

run = config.replace(num_epochs=HELD_OUT_STEPS, validation_frequency=HELD_OUT_STEPS // 10)
for label, optimizer in (
    ("Adam, standard initialisation", MetaOptimizer("adam")),
    ("interpolated initialisation", meta.for_task(held_out)),
):
    _, history = BasicTrainer(network(), run, meta_optimizer=optimizer).train(
        problem=held_out.problem, val_data=held_out.reference
    )
    pairs = list(zip(history["val_epoch"], history["val_relative_l2"], strict=True))
    errors = ", ".join(
        f"{e:.1e} (step {int(step)})"
        for step, e in (pairs[0], pairs[len(pairs) // 2 - 1], pairs[-1])
    )
    print(f"{held_out.name}, {label}: relative L2 {errors}")
