"""Old import path of :mod:`mlops_tasks.flows.monitoring` (flows.monitoring is that module itself)."""

import sys

from mlops_tasks.flows import monitoring as _module

if __name__ == "__main__":  # python -m flows.monitoring
    raise SystemExit(_module.main())
sys.modules[__name__] = _module
