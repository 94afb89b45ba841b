"""nomade.store is the one door to SQL (issue 11, step 1): no library code outside it speaks SQL,
holds a connection or opens a transaction; the import cycles the issue names stay cut; slurm/
produces rows and never imports the store."""

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "nomade"
OUTSIDE = sorted(p for p in SRC.rglob("*.py") if "store" not in p.relative_to(SRC).parts[:1])

SQL = re.compile(r"""["'](?:\s*)(SELECT|INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|PRAGMA|BEGIN|WITH)\s""")
CONNECTION = re.compile(r"\.conn\b|\.transaction\(|\.execute(?:many|script)?\(|\bsqlite3\b|\bcursor\(")


@pytest.mark.parametrize("path", OUTSIDE, ids=lambda p: str(p.relative_to(SRC)))
def test_no_sql_outside_the_store(path):
    bad = [f"{path.relative_to(SRC)}:{i}: {line.strip()}"
           for i, line in enumerate(path.read_text().splitlines(), 1)
           if SQL.search(line) or CONNECTION.search(line)]
    assert not bad, "SQL or a connection outside nomade.store:\n" + "\n".join(bad)


def _imports(path: Path) -> set:
    """Modules a file imports (absolute names), TYPE_CHECKING blocks and function bodies included."""
    pkg = ".".join(("nomade",) + path.relative_to(SRC).parent.parts)
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = pkg.split(".")
            if node.level:
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
    return out


def _module(rel: str) -> str:
    return "nomade." + rel[:-3].replace("/", ".")


@pytest.mark.parametrize("a,b", [("store/bulk.py", "store/db.py"),
                                 ("train/evaluation.py", "train/pipeline.py")])
def test_named_import_cycles_stay_cut(a, b):
    both = _module(b) in _imports(SRC / a) and _module(a) in _imports(SRC / b)
    assert not both, f"{a} and {b} import each other: the cycle is back"


def test_slurm_package_never_imports_the_store():
    for path in sorted((SRC / "slurm").glob("*.py")):
        assert not any(m.startswith("nomade.store") for m in _imports(path)), path
