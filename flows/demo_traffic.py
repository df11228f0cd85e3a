"""Old import path of :mod:`mlops_tasks.flows.demo_traffic` (flows.demo_traffic is that module itself)."""

import sys

from mlops_tasks.flows import demo_traffic as _module

if __name__ == "__main__":  # python -m flows.demo_traffic
    raise SystemExit(_module.main())
sys.modules[__name__] = _module
