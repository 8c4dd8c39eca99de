"""The Triton build inside the serving environment (the `nvidia-pytriton` wheel): `TritonDist` finds the
`tritonserver` binary, the Python-backend stub for the serving interpreter and the libraries both need,
and lays out a private backend directory; `TritonError` is what every Triton start/stop problem raises.
Split out of `inference.triton_local`, which re-exports these names.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from core.paths import REPO_ROOT

SERVING_VENV = REPO_ROOT / ".venv-serving"


class TritonError(RuntimeError):
    """Triton could not be found, started or stopped."""


@dataclass(frozen=True)
class TritonDist:
    """The files of the Triton build inside the serving environment."""

    root: Path  # site-packages/pytriton/tritonserver
    python: Path  # the serving interpreter

    @classmethod
    def find(cls, serving_venv: Path = SERVING_VENV) -> TritonDist:
        python = serving_venv / "bin" / "python"
        roots = sorted(serving_venv.glob("lib/python3*/site-packages/pytriton/tritonserver"))
        if not python.exists() or not roots or not (roots[0] / "bin" / "tritonserver").exists():
            raise TritonError(
                f"{serving_venv}: no tritonserver (install nvidia-pytriton there: make install)"
            )
        return cls(root=roots[0], python=python)

    @property
    def binary(self) -> Path:
        return self.root / "bin" / "tritonserver"

    @property
    def python_version(self) -> str:
        return self.root.parents[2].name.removeprefix("python")  # lib/python3.11/site-packages

    @property
    def stub(self) -> Path:
        return self.root / "python_backend_stubs" / self.python_version / "triton_python_backend_stub"

    def library_dirs(self) -> list[Path]:
        """The wheel's bundled libraries and the serving interpreter's libpython (for the stub)."""
        libdir = subprocess.run(
            [str(self.python), "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return [Path(libdir), self.root.parents[1] / "nvidia_pytriton.libs"]

    def make_backend_dir(self, where: Path) -> Path:
        """A backend directory whose python/ holds the backend, its utils and the stub for this Python.

        The wheel keeps the stubs per Python version outside the backend folder (pytriton copies one in at
        run time); links in a private folder leave the installed wheel untouched.
        """
        python_dir = where / "backends" / "python"
        python_dir.mkdir(parents=True)
        for source in (self.root / "backends" / "python").iterdir():
            (python_dir / source.name).symlink_to(source)
        (python_dir / "triton_python_backend_stub").symlink_to(self.stub)
        return python_dir.parent
