"""Old import path of :mod:`mlops_tasks.flows.batch` (flows.batch is that module itself)."""

import sys

from mlops_tasks.flows import batch as _module

if __name__ == "__main__":  # python -m flows.batch
    raise SystemExit(_module.main())
sys.modules[__name__] = _module
