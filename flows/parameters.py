"""Old import path of :mod:`mlops_tasks.flows.parameters` (flows.parameters is that module itself)."""

import sys

from mlops_tasks.flows import parameters as _module

sys.modules[__name__] = _module
