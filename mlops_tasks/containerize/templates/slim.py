"""Slim a virtualenv for serving (written by mlops-tasks; runs inside the image build)."""

import importlib
import shutil
import sys
from pathlib import Path

venv = Path(sys.argv[1])
keep_extras = "--keep-extras" in sys.argv
precompile = "--precompile" in sys.argv
site = next(venv.glob("lib/python3*/site-packages"))
for path in sorted(site.rglob("*"), reverse=True):
    if not path.exists() or path.is_symlink():
        continue
    rel = path.relative_to(site).parts
    if path.is_dir():
        if path.name == "__pycache__" or (len(rel) > 1 and path.name in ("tests", "test")):
            shutil.rmtree(path)
        continue
    if path.suffix in (".pyx", ".pxd", ".pxi", ".pyi"):
        path.unlink()
if not keep_extras and (site / "pyarrow").is_dir():
    arrow = site / "pyarrow"
    for junk in ("include", "src"):
        shutil.rmtree(arrow / junk, ignore_errors=True)
    # Arrow Flight (RPC) and the C++ test module are never loaded by a model server.
    for lib in [
        *arrow.glob("libarrow_flight.so*"),
        *arrow.glob("libarrow_python_flight.so*"),
        *arrow.glob("_flight.*.so"),
        *arrow.glob("_pyarrow_cpp_tests.*.so"),
    ]:
        lib.unlink()
    # Wheels cannot hold symlinks: libfoo.so, libfoo.so.N and libfoo.so.N.M.P are copies.
    for lib in arrow.glob("lib*.so.*.*.*"):
        soname = lib.name.rsplit(".", 2)[0]
        plain = lib.name.split(".so")[0] + ".so"
        for twin_name in (soname, plain):
            twin = arrow / twin_name
            if twin.is_file() and not twin.is_symlink() and twin.read_bytes() == lib.read_bytes():
                twin.unlink()
                twin.symlink_to(lib.name)
if not keep_extras and (site / "botocore" / "data").is_dir():
    # boto3 is there for the s3:// prediction log: keep the models of S3 and of the
    # credential providers (STS, SSO), drop the ~400 other AWS services (~27 MB).
    for service in (site / "botocore" / "data").iterdir():
        if service.is_dir() and service.name not in ("s3", "sts", "sso", "sso-oidc"):
            shutil.rmtree(service)
if not precompile:
    print("slimmed", site)
    sys.exit(0)
WARM = [
    "numpy",
    "pandas",
    "scipy",
    "pyarrow",
    "pyarrow.parquet",
    "skops.io",
    "cloudpickle",
    "yaml",
    "orjson",
    "uvicorn",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.loops.uvloop",
    "uvicorn.lifespan.on",
    "uvloop",
    "httptools",
    "boto3",
    "botocore.client",
    "sklearn",
    "sklearn.pipeline",
    "sklearn.compose",
    "sklearn.preprocessing",
    "sklearn.impute",
    "sklearn.linear_model",
    "sklearn.ensemble",
    "sklearn.tree",
    "sklearn.svm",
    "sklearn.neighbors",
]
for name in WARM:
    try:
        importlib.import_module(name)
    except Exception:
        pass
print("slimmed", site, "and compiled the modules imported at start")
