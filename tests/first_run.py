"""First-run setup in tests: the one-time setup code, obtained the way an operator does (`flask foyer setup-code`)."""

from __future__ import annotations

import re

from flask import Flask


def setup_code(app: Flask) -> str:
    """A fresh setup code for `app`, read from the command's output."""
    result = app.test_cli_runner().invoke(args=["foyer", "setup-code"])
    assert result.exit_code == 0, result.output
    return re.search(r"Setup code: (\S+)", result.output).group(1)
