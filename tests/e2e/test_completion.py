"""Shell completion as the README tells a user to set it up, in real bash, zsh and fish: each
line loads, and completing ``cbmon se`` or a choice offers what cbmon accepts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_binary

pytestmark = pytest.mark.slow

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
BIN = Path(sys.executable).parent  # this environment's cbmon


def _line(shell: str) -> str:
    """The README's line for ``shell``."""
    found = [line for line in README.splitlines() if f"_CBMON_COMPLETE={shell}_source" in line]
    assert len(found) == 1, found
    return found[0]


def _run(shell: str, script: str) -> list[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HOME": "/nonexistent"}
    done = subprocess.run(
        [require_binary(shell), "-c", script], env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    return done.stdout.splitlines()


def test_bash_completes_commands_and_choices() -> None:
    script = f"""{_line("bash")}
complete -p cbmon
COMP_WORDS=(cbmon se); COMP_CWORD=1; _cbmon_completion cbmon
printf '%s\\n' "${{COMPREPLY[@]}}"
COMPREPLY=(); COMP_WORDS=(cbmon report --format ''); COMP_CWORD=3; _cbmon_completion cbmon
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    registered, *offered = _run("bash", script)
    assert registered.endswith("-F _cbmon_completion cbmon")
    assert offered == ["serve", "table", "markdown", "csv", "json", "html"]


def test_zsh_registers_the_completion_function() -> None:
    script = f"""autoload -Uz compinit && compinit -u -D
{_line("zsh")}
print -r -- ${{_comps[cbmon]}}
COMP_WORDS="cbmon se" COMP_CWORD=1 _CBMON_COMPLETE=zsh_complete cbmon
"""
    registered, *answer = _run("zsh", script)
    assert registered == "_cbmon_completion"
    assert answer[:2] == ["plain", "serve"]


def test_fish_completes_commands_and_choices() -> None:
    script = f"""{_line("fish")}
complete -C 'cbmon se'
complete -C 'cbmon serve --log-format '
"""
    command, *formats = _run("fish", script)
    assert command.startswith("serve\t")
    assert sorted(formats) == ["json", "text"]
