"""Optimization beyond a fixed optimizer: :class:`MetaOptimizer` and task families."""

from opifex.core.training.optimizers import hypergradient_adam as hypergradient_adam
from opifex.optimization.learned_rule import learned_rule as learned_rule
from opifex.optimization.meta import MetaOptimizer as MetaOptimizer
from opifex.optimization.meta import MetaTrainResult as MetaTrainResult
from opifex.optimization.tasks import MetaTask as MetaTask
from opifex.optimization.tasks import burgers_family as burgers_family
from opifex.optimization.tasks import burgers_task as burgers_task
from opifex.optimization.tasks import poisson_family as poisson_family
from opifex.optimization.tasks import poisson_task as poisson_task
