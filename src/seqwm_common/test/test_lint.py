"""The workspace passes its linter (ruff, configured in ruff.toml at the repository root)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_every_python_file_passes_ruff():
    ruff = shutil.which('ruff') or str(Path(sys.executable).with_name('ruff'))
    out = subprocess.run([ruff, 'check', '--output-format', 'concise', str(REPO)], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
