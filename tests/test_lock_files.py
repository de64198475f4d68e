"""The lock files pin every dependency with hashes, and this environment
was installed from them (docs/operations.md, "Dependencies")."""
from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def locked(name: str) -> dict[str, tuple[str, str | None]]:
    """package → (version, marker) from a uv/pip-tools lock file."""
    text = (ROOT / name).read_text().replace("\\\n", " ")
    pins = {}
    for line in text.splitlines():
        if not line or line[0] in " #":
            continue
        match = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)(?:\s*;\s*(.+?))?\s+--hash=sha256:[0-9a-f]{64}", line)
        assert match, f"{name}: not pinned with a hash: {line[:80]}"
        pins[canonicalize_name(match.group(1))] = (match.group(2), match.group(3))
    return pins


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


@pytest.mark.parametrize(("lock", "groups"), [("requirements.txt", []), ("requirements-dev.txt", ["dev"])])
def test_every_declared_dependency_is_locked_within_its_range(lock, groups):
    pins = locked(lock)
    declared = project()["dependencies"] + [d for g in groups for d in project()["optional-dependencies"][g]]
    for line in declared:
        requirement = Requirement(line)
        version, _ = pins[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version, prereleases=True), f"{requirement} locked at {version}"


def test_this_environment_matches_the_lock():
    for name, (version, marker) in locked("requirements-dev.txt").items():
        if marker and not Marker(marker).evaluate():
            continue
        assert metadata.version(name) == version, f"{name}: installed {metadata.version(name)}, locked {version}"
