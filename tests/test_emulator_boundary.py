"""The emulator stands beside the app, not inside it: `emulator/` never imports `app`, and in `app/` only
the Microsoft package (its wiring, the built-in defaults and the `flask emulator` commands) imports
`emulator`. Everything else asks the Microsoft clients what this installation can do.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: The only place in app/ that may know an emulator can stand behind Microsoft.
MICROSOFT = ROOT / "app" / "services" / "microsoft"


def imported_packages(source: str) -> set[str]:
    """The top-level packages a module's absolute imports name, wherever they sit (function-local too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _modules(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def test_the_scanner_sees_top_level_function_local_and_from_imports():
    source = "import os\nfrom . import core\ndef f():\n    from app.models import db\n    import emulator.acs\n"
    assert imported_packages(source) == {"os", "app", "emulator"}


def test_the_emulator_imports_nothing_from_the_app():
    modules = _modules(ROOT / "emulator")
    assert len(modules) > 10  # the package is where this test looks for it
    offenders = [str(p.relative_to(ROOT)) for p in modules if "app" in imported_packages(p.read_text())]
    assert offenders == []


def test_only_the_microsoft_package_imports_the_emulator():
    offenders = [str(p.relative_to(ROOT)) for p in _modules(ROOT / "app")
                 if not p.is_relative_to(MICROSOFT) and "emulator" in imported_packages(p.read_text())]
    assert offenders == []
    # …and it really does, so the rule above is about the right package name.
    assert any("emulator" in imported_packages(p.read_text()) for p in _modules(MICROSOFT))


@pytest.mark.parametrize("module", ["app.config", "app.services.accounts.accounts", "app.services.microsoft.connection",
                                    "app.services.dashboards.health", "app.routes.public.join",
                                    "app.routes.admin.microsoft"])
def test_business_code_has_no_emulator_branches(module):
    """The modules that used to ask "is this the emulator?" now ask the clients what they can do."""
    path = ROOT / (module.replace(".", "/") + ".py")
    source = path.read_text()
    for needle in ("emulator_config", "uses_emulator", "EmulatorConfig"):
        assert needle not in source, f"{module} mentions {needle}"
