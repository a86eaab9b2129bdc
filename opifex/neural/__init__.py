"""Neural network models."""

from opifex.neural.base import StandardMLP as StandardMLP
from opifex.neural.operators import FNO as FNO
from opifex.neural.pinn import EmbeddedMLP as EmbeddedMLP
from opifex.neural.pinn import FactorizedLinear as FactorizedLinear
from opifex.neural.pinn import FourierFeatures as FourierFeatures
from opifex.neural.pinn import ModifiedMLP as ModifiedMLP
from opifex.neural.pinn import PeriodicEmbedding as PeriodicEmbedding
