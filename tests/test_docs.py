"""The documentation tells the truth about the code: schema table, architecture, no outside files."""

from __future__ import annotations

import re
from pathlib import Path

from bench.schema import COLUMNS, markdown_table

REPO = Path(__file__).resolve().parent.parent


def test_readme_schema_table_is_the_code_table() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- schema table: .*? -->\n(.*?)\n<!-- end schema table -->", readme, re.DOTALL)
    assert match, "README.md has no generated schema table"
    assert match.group(1) == markdown_table(), "README schema table differs: paste `python -m bench.schema`"
    assert len(COLUMNS) == len(match.group(1).splitlines()) - 2


def test_no_file_points_outside_the_repository() -> None:
    # The names are split so that this file does not itself mention them (repository hooks grep for them).
    names = ("DESIGN" ".md", "coreml" "-facts", "../" "shared")
    outside = re.compile("|".join(re.escape(name) for name in names))
    offenders = []
    for path in [*REPO.joinpath("bench").rglob("*.py"), *REPO.joinpath("tests").rglob("*.py"),
                 REPO / "README.md", *REPO.joinpath("docs").rglob("*.md")]:  # fmt: skip
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if outside.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_architecture_names_every_package_module() -> None:
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    top = sorted(p.stem for p in REPO.joinpath("bench").glob("*.py") if p.stem not in ("__init__", "__main__"))
    missing = [name for name in top if f"{name}.py" not in text]
    assert not missing, f"docs/architecture.md does not mention bench/{missing}"
