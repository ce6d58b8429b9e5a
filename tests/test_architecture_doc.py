"""The architecture doc's list of service packages is the tree, in the order `make lint` enforces."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROW = re.compile(r"^\| `(\w+)/` \| (.*) \|$", re.MULTILINE)


def documented(repo_root: Path) -> dict[str, str]:
    """Each package row of docs/architecture.md's services table: name -> its responsibility text."""
    return dict(ROW.findall((repo_root / "docs" / "architecture.md").read_text(encoding="utf-8")))


def test_every_service_package_and_module_is_in_the_architecture_doc(repo_root):
    services = repo_root / "app" / "services"
    packages = {p.name for p in services.iterdir() if (p / "__init__.py").is_file()}
    rows = documented(repo_root)
    assert set(rows) == packages
    for package, text in rows.items():
        named = set(re.findall(r"`(\w+)`", text))
        modules = {f.stem for f in (services / package).glob("*.py") if f.stem != "__init__"}
        assert modules <= named, f"{package}/: modules not described in docs/architecture.md: {modules - named}"


def test_the_doc_lists_the_packages_in_the_order_of_the_import_contract(repo_root):
    config = tomllib.loads((repo_root / "pyproject.toml").read_text(encoding="utf-8"))
    [contract] = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    enforced = [name.strip().removeprefix("app.services.") for layer in contract["layers"]
                for name in layer.split("|") if name.strip().startswith("app.services.")]
    assert list(documented(repo_root)) == enforced
