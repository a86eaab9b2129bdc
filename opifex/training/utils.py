"""Utility functions for safe model operations.

Finite checks on pytrees (usable inside ``jit`` or on the host), a finite-checked model
call, parameter counting, and splitting a model into ``(graphdef, params, rest)`` and
merging it back with the shapes checked. The trainers use these same functions: the
engine's guard that skips a non-finite update is :func:`tree_all_finite`, error recovery
re-draws the tensors :func:`nonfinite_leaves` names, a fresh run refuses NaN parameters
with :func:`check_finite`, checkpoint restores compare shapes with
:func:`check_compatible`, evaluation runs in :func:`batched_apply` chunks, and
``opifex train`` reports :func:`count_parameters`.

Example::

    from opifex.training.utils import check_finite, count_parameters, split_model

    print(count_parameters(model))          # 4,481
    graphdef, params, rest = split_model(model)
    check_finite("params", params)          # ValueError naming the NaN tensors, if any
"""

from opifex.core.training.model_utils import batched_apply as batched_apply
from opifex.core.training.model_utils import check_compatible as check_compatible
from opifex.core.training.model_utils import check_finite as check_finite
from opifex.core.training.model_utils import checked_apply as checked_apply
from opifex.core.training.model_utils import count_parameters as count_parameters
from opifex.core.training.model_utils import leaf_path as leaf_path
from opifex.core.training.model_utils import merge_model as merge_model
from opifex.core.training.model_utils import nonfinite_leaves as nonfinite_leaves
from opifex.core.training.model_utils import split_model as split_model
from opifex.core.training.model_utils import tree_all_finite as tree_all_finite

__all__ = [
    "batched_apply",
    "check_compatible",
    "check_finite",
    "checked_apply",
    "count_parameters",
    "leaf_path",
    "merge_model",
    "nonfinite_leaves",
    "split_model",
    "tree_all_finite",
]
