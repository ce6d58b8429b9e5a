"""README.md and .env.example document every environment variable that app/config.py reads."""

import re

ENV_READ = re.compile(r"""\benv\(\s*["']([A-Z][A-Z0-9_]*)["']""")


def _variables(repo_root) -> set[str]:
    found = set(ENV_READ.findall((repo_root / "app" / "config.py").read_text(encoding="utf-8")))
    assert "DATABASE_URL" in found and "SECRET_KEY" in found, "the pattern no longer finds config reads"
    return found


def test_readme_configuration_table_lists_every_variable(repo_root):
    rows = set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", (repo_root / "README.md").read_text(encoding="utf-8"), re.M))
    missing = sorted(_variables(repo_root) - rows)
    assert not missing, f"add these to the configuration table in README.md: {missing}"


def test_env_example_mentions_every_variable(repo_root):
    text = (repo_root / ".env.example").read_text(encoding="utf-8")
    mentioned = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, re.M))
    missing = sorted(_variables(repo_root) - mentioned)
    assert not missing, f"add these to .env.example: {missing}"
