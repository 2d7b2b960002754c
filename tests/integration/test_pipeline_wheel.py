"""``pip install streamml`` + ``streamml demo``: the demo runs from a built wheel, no checkout.

The wheel is built from a copy of the sources (``pyproject.toml``, ``README.md``,
``streamml/``), installed with ``--no-deps`` into a fresh venv in a temp dir,
and ``streamml demo`` runs from a temp cwd holding nothing else. The
dependencies come from the development venv's site-packages, added to the
fresh venv's ``sys.path`` by a ``.pth`` line (offline, and without the
development venv's editable install, whose own ``.pth`` hook a plain path
entry does not run); ``pip check`` proves they satisfy the wheel's declared
requirements. The test asserts that ``streamml`` is imported from the wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _build_wheel(tmp: Path) -> Path:
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "streamml", src / "streamml",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "-w", str(out), str(src)],
                   check=True, capture_output=True, text=True, cwd=tmp)
    [wheel] = out.glob("streamml-*.whl")
    return wheel


def _fresh_venv(tmp: Path, wheel: Path) -> Path:
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print("
                              "sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    deps = sysconfig.get_paths()["purelib"]  # the development venv's packages
    Path(purelib, "zz_streamml_test_deps.pth").write_text(deps + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps",
                    "--no-index", str(wheel)], check=True, capture_output=True, text=True)
    return env_dir


def test_demo_runs_from_an_installed_wheel(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    env_dir = _fresh_venv(tmp_path, wheel)
    python, streamml = env_dir / "bin" / "python", env_dir / "bin" / "streamml"
    cwd = tmp_path / "user"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("STREAMML_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    where = subprocess.run([str(python), "-c", "import streamml, streamml.examples; "
                            "print(streamml.__file__)"], check=True, capture_output=True,
                           text=True, cwd=cwd, env=env).stdout.strip()
    assert Path(where).is_relative_to(env_dir), where
    check = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True,
                           text=True, cwd=cwd, env=env)
    missing = [line for line in check.stdout.splitlines() if line.startswith("streamml ")]
    assert missing == [], check.stdout

    proc = subprocess.run([str(streamml), "demo", "--rows", "2000", "--rate", "0", "-q"],
                          capture_output=True, text=True, cwd=cwd, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    assert "Traceback" not in proc.stderr
    assert "rows replayed" in proc.stdout and "2,000" in proc.stdout, proc.stdout
    assert "done in" in proc.stdout

    status = subprocess.run([str(streamml), "status", "demo", "--json"], capture_output=True,
                            text=True, cwd=cwd, env=env)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    names = {c["name"] for c in report["components"]}
    assert {"statistics_gen", "schema_gen", "example_validator", "trainer"} <= names
    assert report["windows"] > 0
    assert (cwd / ".streamml").is_dir()  # the default embedded log, in the user's cwd
