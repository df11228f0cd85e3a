"""Old import path of :mod:`mlops_tasks.flows.abtest` (flows.abtest is that module itself)."""

import sys

from mlops_tasks.flows import abtest as _module

if __name__ == "__main__":  # python -m flows.abtest
    raise SystemExit(_module.main())
sys.modules[__name__] = _module
