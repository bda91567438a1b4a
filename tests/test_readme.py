"""README's Quick start: exactly two commands, the second being what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_start_has_the_two_documented_commands():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 2
    commands = [block.strip() for block in blocks]
    assert all("\n" not in command for command in commands)
    assert commands[0].endswith("colorquant demo") and "pip install ." in commands[0]
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci.splitlines()  # .ci/run runs the second command as written
