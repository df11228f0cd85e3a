"""A stand-in for ``python -m mlops_tasks.cli <stage>`` at the process boundary.

Reads the parameters from standard input like the real command line, then ends as the
``FAKE_*`` variables say: ``FAKE_EXIT`` (exit code), ``FAKE_RESULT`` (result JSON written to
``--output``), ``FAKE_ERROR`` (error JSON to ``--error-output``), ``FAKE_SLEEP`` (hang first),
``FAKE_KILL`` (kill itself with that signal). ``FAKE_ECHO`` writes the parameters it got and
its environment's ``MLFLOW_*``/``AWS_*`` variables as the result.
"""

import json
import os
import sys
import time

args = sys.argv[1:]
output = args[args.index("--output") + 1]
error_output = args[args.index("--error-output") + 1]
params = json.loads(sys.stdin.read() or "{}")
print(f"fake mlops-tasks {args[2]} starting", flush=True)
if os.environ.get("FAKE_SLEEP"):
    time.sleep(float(os.environ["FAKE_SLEEP"]))
if os.environ.get("FAKE_KILL"):
    os.kill(os.getpid(), int(os.environ["FAKE_KILL"]))
if os.environ.get("FAKE_ECHO"):
    seen = {k: v for k, v in os.environ.items() if k.startswith(("MLFLOW_", "AWS_", "MLOPS_S3"))}
    result = {"argv": args, "params": params, "env": seen}
    with open(output, "w") as fh:
        json.dump(result, fh)
if os.environ.get("FAKE_RESULT"):
    with open(output, "w") as fh:
        fh.write(os.environ["FAKE_RESULT"])
if os.environ.get("FAKE_ERROR"):
    with open(error_output, "w") as fh:
        fh.write(os.environ["FAKE_ERROR"])
print("fake mlops-tasks done", flush=True)
sys.exit(int(os.environ.get("FAKE_EXIT", "0")))
