"""Old import path of :mod:`mlops_tasks.flows.retrain` (flows.retrain is that module itself)."""

import sys

from mlops_tasks.flows import retrain as _module

if __name__ == "__main__":  # python -m flows.retrain
    raise SystemExit(_module.main())
sys.modules[__name__] = _module
