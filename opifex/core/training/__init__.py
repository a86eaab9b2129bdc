"""Training mechanism: configs, the compiled engine, the unified Trainer."""

from opifex.core.training.config import CheckpointConfig as CheckpointConfig
from opifex.core.training.config import LossConfig as LossConfig
from opifex.core.training.config import OptimizerConfig as OptimizerConfig
from opifex.core.training.config import TrainingConfig as TrainingConfig
from opifex.core.training.config import ValidationConfig as ValidationConfig
from opifex.core.training.history import History as History
from opifex.core.training.state import TrainingState as TrainingState
from opifex.core.training.trainer import Trainer as Trainer
