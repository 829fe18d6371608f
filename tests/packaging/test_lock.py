"""requirements/validator.lock against pyproject.toml: every requirement pinned inside its
range, the validator's exact pins unchanged, a hash on every pin; the build pins agree."""

from __future__ import annotations

import re

from tests.packaging.dist import LOCK, ROOT, Pin, lock_problems, parse_lock, pyproject


def _requirements() -> tuple[list[str], list[str], list[str]]:
    project = pyproject()["project"]
    assert isinstance(project, dict)
    extras = project["optional-dependencies"]
    return project["dependencies"], extras["validator"], extras["dev"]


def test_the_lock_pins_every_requirement_within_its_range_with_hashes() -> None:
    sdk, validator, _ = _requirements()
    pins = parse_lock(LOCK.read_text())
    assert lock_problems(pins, sdk, validator) == []
    # The extra's exact pins are the lock's: `make setup` and the image run the same.
    for text in validator:
        name, version = text.split("==")
        assert pins[name.lower()].version == version


def test_the_sdk_takes_ranges_and_the_validator_exact_pins() -> None:
    sdk, validator, _ = _requirements()
    assert sdk and all(">=" in r and "<" in r for r in sdk)
    assert all(re.fullmatch(r"[A-Za-z0-9-]+==[0-9.]+", r) for r in validator)
    # Nothing only the validator needs leaks into the SDK's dependencies.
    for name in ("lmdb", "grpcio-health-checking", "grpcio-reflection", "prometheus-client"):
        assert not any(r.startswith(name) for r in sdk)
        assert any(r.startswith(f"{name}==") for r in validator)


def test_lock_problems_fires_on_a_bad_lock() -> None:
    """Negative control: the checker sees each defect it exists for."""
    good = Pin("1.2.0", ("sha256:" + "0" * 64,))
    sdk, validator = ["a>=1.0,<2"], ["b==3.0"]
    assert lock_problems({"a": good, "b": Pin("3.0", good.hashes)}, sdk, validator) == []
    assert lock_problems({"a": good}, sdk, validator) == ["b is not in the lock"]
    assert lock_problems({"a": Pin("2.1", good.hashes), "b": Pin("3.0", good.hashes)}, sdk, [])
    assert lock_problems({"a": good, "b": Pin("3.1", good.hashes)}, sdk, validator)
    assert lock_problems({"a": Pin("1.2.0", ()), "b": Pin("3.0", good.hashes)}, sdk, validator)


def test_parse_lock_reads_uv_output() -> None:
    text = "# comment\nlmdb==3.0.0 \\\n    --hash=sha256:" + "a" * 64 + " \\\n"
    text += "    --hash=sha256:" + "b" * 64 + "\n    # via x\nGrpcio_Tools==1.0\n"
    pins = parse_lock(text)
    assert pins["lmdb"] == Pin("3.0.0", ("sha256:" + "a" * 64, "sha256:" + "b" * 64))
    assert pins["grpcio-tools"] == Pin("1.0", ())


def test_build_pins_agree_between_pyproject_dev_and_the_makefile_wheelhouse() -> None:
    """The packaging test builds without isolation with the dev pins, and `make setup` puts
    the build pins in the wheelhouse for `pip install .`: all three must be one version."""
    build = pyproject()["build-system"]
    assert isinstance(build, dict)
    requires = build["requires"]
    _, _, dev = _requirements()
    makefile = (ROOT / "Makefile").read_text()
    (line,) = re.findall(r"^BUILD_PINS := (.*)$", makefile, re.M)
    assert sorted(requires) == sorted(line.split())
    assert set(requires) <= set(dev)
