"""Every ```python block of docs/layers/*.md runs (the examples are part of the contract)."""
import re
import warnings
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs" / "layers"
PAGES = sorted(DOCS.glob("*.md"))


def _blocks(page: Path):
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)


def test_every_layer_family_has_a_page_with_an_example():
    names = {p.stem for p in PAGES}
    assert {"sage", "gat", "gin", "mpnn", "blocks", "models"} <= names
    for page in PAGES:
        if page.stem != "benchmarks":
            assert _blocks(page), f"{page.name} has no python example"


@pytest.mark.parametrize("page", [p for p in PAGES if _blocks(p)], ids=lambda p: p.name)
def test_doc_examples_run(page):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for code in _blocks(page):
            exec(compile(code, str(page), "exec"), {"__name__": "__doc_example__"})
