"""docs/python-api.md's examples run as written, in order, in one namespace, in a fresh folder."""

import re
from pathlib import Path

import pytest

from ix2x import registry

DOC = Path(__file__).resolve().parents[2] / "docs" / "python-api.md"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


@pytest.fixture
def fresh_registry(monkeypatch):
    monkeypatch.setattr(registry, "_IN_PROCESS", {kind: {} for kind in registry.GROUPS})


def test_the_examples_run(tmp_path, monkeypatch, fresh_registry):
    blocks = _python_blocks(DOC.read_text())
    assert len(blocks) >= 6  # run, build_suite, load, two analyses, the editor, registering it
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, code in enumerate(blocks):
        exec(compile(code, f"{DOC.name} [python block {i + 1}]", "exec"), namespace)
    # What the page claims it made: two runs under ./results, the second with the registered editor.
    runs = sorted((tmp_path / "results" / "phantom_smoke").iterdir())
    assert len(runs) == 2 and (runs[0] / "report.html").is_file()
    assert set(namespace["change"].index) == {"identity", "brighten"}


def test_register_cannot_take_an_installed_name(fresh_registry):
    from ix2x.types import Editor

    class Mine(Editor):
        def edit(self, requests):
            return []

    with pytest.raises(registry.RegistryError, match="`identity` is already registered by ix2x"):
        registry.register("editor", "identity", Mine)
    with pytest.raises(registry.RegistryError, match="must be a editor class with `Config`"):
        registry.register("editor", "mine", object())
    registry.register("editor", "mine", Mine)
    assert registry.load("editor", "mine") is Mine and "mine" in registry.names("editor")
