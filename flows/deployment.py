"""Old import path of :mod:`mlops_tasks.flows.deployment` (flows.deployment is that module itself)."""

import sys

from mlops_tasks.flows import deployment as _module

if __name__ == "__main__":  # python -m flows.deployment
    raise SystemExit(_module.main())
sys.modules[__name__] = _module
