"""The layering rules of docs/architecture.md, checked on the source: layers import only
``gnnkit.ops`` (never an ops submodule or ``gnnkit.kernels``; besides it only the shared leaf modules
``gnnkit.typing`` and ``gnnkit._checks``), only ``gnnkit/ops/primitives.py``
imports ``gnnkit.kernels``, kernels import nothing from gnnkit, and no two modules import each
other in a circle (imports inside functions and under TYPE_CHECKING included)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _modules():
    mods = {}
    for p in (ROOT / "gnnkit").rglob("*.py"):
        name = ".".join(p.relative_to(ROOT).with_suffix("").parts)
        mods[name[:-len(".__init__")] if name.endswith(".__init__") else name] = p
    for p in (ROOT / "kernels").glob("*.py"):
        mods["gnnkit.kernels" + ("" if p.stem == "__init__" else "." + p.stem)] = p
    return mods


def _imports(name: str, path: Path, mods, targets_only: bool = False) -> set:
    """gnnkit modules ``name`` imports: the ``from X`` / ``import X`` targets, plus (unless
    ``targets_only``) ``from X import y`` names that are themselves modules."""
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[:len(pkg.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            cands = [target] + ([] if targets_only else [f"{target}.{a.name}" for a in node.names])
        elif isinstance(node, ast.Import):
            cands = [a.name for a in node.names]
        else:
            continue
        out.update(c for c in cands if c.startswith("gnnkit") and c != name and (c == cands[0] or c in mods))
    return out


def test_layers_import_only_the_public_ops_api():
    mods = _modules()
    bad = []
    for name, path in mods.items():
        if name.startswith("gnnkit.nn."):
            for imp in _imports(name, path, mods, targets_only=True):
                if imp.startswith("gnnkit.ops.") or imp.startswith("gnnkit.kernels"):
                    bad.append(f"{name} imports {imp}")
                # beside the ops API only the layers' own package and the two shared leaf modules (type aliases,
                # argument checks), which import nothing from gnnkit above them
                elif imp != "gnnkit.ops" and not imp.startswith("gnnkit.nn") and imp not in SHARED:
                    bad.append(f"{name} imports {imp}")
    assert not bad, "layers must import gnnkit.ops only (and gnnkit.typing, gnnkit._checks):\n" + "\n".join(bad)


SHARED = ("gnnkit.typing", "gnnkit._checks")


def test_shared_leaf_modules_import_no_gnnkit_module():
    """At run time: an import under ``if TYPE_CHECKING:`` (gnnkit.typing names ``Graph`` for annotations) is not
    executed."""
    for name in SHARED:
        tree = ast.parse(_modules()[name].read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
                node.body = []
        found = [("." * n.level) + (n.module or "") for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                 and (n.level > 0 or (n.module or "").startswith("gnnkit"))]  # relative: inside gnnkit too
        found += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
                  if a.name.startswith("gnnkit")]
        assert not found, f"{name} must stay a leaf (no gnnkit imports at run time), imports {found}"


def test_only_primitives_reach_the_kernels():
    mods = _modules()
    users = {name for name, path in mods.items() if not name.startswith("gnnkit.kernels")
             and any(i.startswith("gnnkit.kernels") for i in _imports(name, path, mods))}
    assert users <= {"gnnkit.ops.primitives", "gnnkit.ops.vq"}, users
    for name, path in mods.items():
        if name.startswith("gnnkit.kernels"):
            outside = [i for i in _imports(name, path, mods) if not i.startswith("gnnkit.kernels")]
            assert not outside, f"{name} imports {outside}: kernels import nothing from gnnkit"


def test_no_import_circles():
    mods = _modules()
    edges = {n: {i for i in _imports(n, p, mods) if i in mods} for n, p in mods.items()}
    # Tarjan's strongly connected components
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    assert not comps, f"import circles: {comps}"


def test_public_functions_annotate_every_argument():
    """Type hints on the public API (forward included): every argument of every public function and
    method in gnnkit/ (modules and classes without a leading underscore) is annotated; ruff (ANN201)
    checks the return types."""
    missing = []
    for path in (ROOT / "gnnkit").rglob("*.py"):
        rel = path.relative_to(ROOT / "gnnkit").parts
        if any(part.startswith("_") and part != "__init__.py" for part in rel):
            continue
        tree = ast.parse(path.read_text())

        def visit(node, public=True):
            for n in ast.iter_child_nodes(node):
                if isinstance(n, ast.ClassDef):
                    visit(n, public and not n.name.startswith("_"))
                elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and public:
                    if n.name.startswith("_") and n.name not in ("__init__", "__call__"):
                        continue
                    for a in n.args.posonlyargs + n.args.args + n.args.kwonlyargs:
                        if a.arg not in ("self", "cls", "ctx") and a.annotation is None:
                            missing.append(f"{path.relative_to(ROOT)}:{n.lineno} {n.name}({a.arg})")

        visit(tree)
    assert not missing, "unannotated public arguments:\n" + "\n".join(missing)
