"""Training policy built on :mod:`opifex.core.training`."""

from opifex.core.physics.losses import PhysicsInformedLoss as PhysicsInformedLoss
from opifex.core.physics.losses import PhysicsLossConfig as PhysicsLossConfig
from opifex.core.physics.problem import PhysicsProblem as PhysicsProblem
from opifex.core.training.config import TrainingConfig as TrainingConfig
from opifex.core.training.history import History as History
from opifex.core.training.state import TrainingState as TrainingState
from opifex.core.training.trainer import Trainer as Trainer
from opifex.training.adaptive_sampling import RADConfig as RADConfig
from opifex.training.adaptive_sampling import RADSampler as RADSampler
from opifex.training.adaptive_sampling import RARDConfig as RARDConfig
from opifex.training.adaptive_sampling import RARDRefiner as RARDRefiner
from opifex.training.basic_trainer import BasicTrainer as BasicTrainer
from opifex.training.basic_trainer import ModularTrainer as ModularTrainer
from opifex.training.components import FlexibleOptimizerFactory as FlexibleOptimizerFactory
from opifex.training.components import TrainingComponentBase as TrainingComponentBase
from opifex.training.metrics import AdvancedMetricsCollector as AdvancedMetricsCollector
from opifex.training.recovery import ErrorRecoveryManager as ErrorRecoveryManager
