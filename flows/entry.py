"""Old import path of :mod:`mlops_tasks.flows.entry` (flows.entry is that module itself)."""

import sys

from mlops_tasks.flows import entry as _module

sys.modules[__name__] = _module
