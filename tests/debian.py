"""Install the Debian packages a test needs when they are missing (CI machines start bare)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

_updated = False


def ensure_command(command: str, package: str) -> str:
    """Return the path of a command, installing its Debian package first when it is missing."""
    global _updated
    found = shutil.which(command)
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.fail(
            f"{command} is missing; install the Debian package {package!r} to run this test"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if not _updated:
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
        _updated = True
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
        check=True,
        env=env,
        timeout=900,
    )
    found = shutil.which(command)
    if not found:
        pytest.fail(f"installing {package!r} did not provide {command}")
    return found
