"""Find the interpreter of a Python version: ``python3 scripts/interpreters.py 3.11`` prints its path.

Looks on PATH (``python3.11``), then among pyenv's versions, whose shims refuse versions that are
installed but not selected.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys


def find_python(version: str) -> str:
    """The path of a working ``python{version}``; exits naming the version when there is none."""
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/{version}.*/bin/python{version}"), reverse=True)
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "-c", ""], capture_output=True).returncode == 0:
            return candidate
    sys.exit(f"Python {version} is not installed (looked on PATH and in {pyenv_root}/versions)")


if __name__ == "__main__":
    print(find_python(sys.argv[1]))
