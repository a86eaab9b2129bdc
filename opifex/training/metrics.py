"""Metrics tracking and run state (re-exported from :mod:`opifex.core.training`)."""

from opifex.core.training.history import History as History
from opifex.core.training.metrics import AdvancedMetricsCollector as AdvancedMetricsCollector
from opifex.core.training.metrics import convergence_rate as convergence_rate
from opifex.core.training.metrics import prediction_metrics as prediction_metrics
from opifex.core.training.physics_configs import MetricsTrackingConfig as MetricsTrackingConfig
from opifex.core.training.state import TrainingState as TrainingState
