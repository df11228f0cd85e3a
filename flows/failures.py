"""Old import path of :mod:`mlops_tasks.flows.failures` (flows.failures is that module itself)."""

import sys

from mlops_tasks.flows import failures as _module

sys.modules[__name__] = _module
