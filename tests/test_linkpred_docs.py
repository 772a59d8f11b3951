"""Run every ```python block of docs/linkpred.md, in order, in one namespace."""
import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "linkpred.md"


def test_doc_examples_run(capsys):
    text = DOC.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 6, "docs/linkpred.md lost its examples"
    ns: dict = {}
    for i, code in enumerate(blocks):
        exec(compile(code, f"{DOC.name}[block {i}]", "exec"), ns)
    out = capsys.readouterr().out
    assert "refused:" in out and "supervision_in_messages" in out
