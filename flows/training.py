"""Old import path of :mod:`mlops_tasks.flows.training` (flows.training is that module itself)."""

import sys

from mlops_tasks.flows import training as _module

if __name__ == "__main__":  # python -m flows.training
    raise SystemExit(_module.main())
sys.modules[__name__] = _module
