"""The README and docs/ hold together: a short front page, every page reachable from it, no dead
link or anchor, no path to a file that moved, the exit-code tables the same as the code, and one
word per concept ("pre-prod", "stage file")."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

from common import exit_codes
from promotion import errors

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"

# spans shaped like this repository's paths that name something else, and what
NOT_OURS = {
    "sagemaker/model.py": "the SageMaker Python SDK v2's file",
    "sagemaker_containers/_mapping.py": "sagemaker-containers' file, patched in the runtime twin",
    "sagemaker_containers/_server.py": "sagemaker-containers' file: its gunicorn workers",
    "sagemaker_inference/decoder.py": "sagemaker-inference's file, patched in the image",
    "acceptance/second.csv": "an S3 key under the stage's input prefix (the acceptance run)",
}
FILE_ENDINGS = (".py", ".tf", ".json", ".yml", ".yaml", ".lock", ".md", ".hcl", ".toml", ".csv")
# pages whose prose is not reworded here yet: each must still hold what it is excused for
WORDING_EXCUSED = {"docs/deploying-to-aws.md"}


def pages() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def name(page: Path) -> str:
    return page.relative_to(REPO).as_posix()


def outside_fences(text: str) -> list[str]:
    """The page's lines with fenced code blocks (and their fences) blanked."""
    lines, fence = [], ""
    for line in text.splitlines():
        opening = re.match(r"\s*(`{3,}|~{3,})", line)
        if fence:
            if opening and opening.group(1).startswith(fence):
                fence = ""
            lines.append("")
        elif opening:
            fence = opening.group(1)
            lines.append("")
        else:
            lines.append(line)
    return lines


CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def without_code(text: str) -> list[str]:
    """The page's prose lines: fenced blocks blanked, inline code spans removed."""
    return [CODE_SPAN.sub("", line) for line in outside_fences(text)]


def code_spans(text: str) -> list[str]:
    """The inline code spans of the page, outside fenced blocks."""
    return [match.group(2) for line in outside_fences(text) for match in CODE_SPAN.finditer(line)]


def links(page: Path) -> list[str]:
    """The targets of the page's markdown links, outside code."""
    prose = "\n".join(without_code(page.read_text(encoding="utf-8")))
    return re.findall(r"\]\(([^)\s]+)\)", prose)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation but '-' and '_' dropped, spaces
    to '-'."""
    text = re.sub(r"<[^>]+>", "", heading).strip().lower()
    kept = "".join(
        char
        for char in text
        if char in " -_" or unicodedata.category(char)[0] in "LN"  # letters and numbers
    )
    return kept.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = page.read_text(encoding="utf-8")
    found: set[str] = set(re.findall(r'<a id="([^"]+)"></a>', text))
    seen: dict[str, int] = {}
    for line in outside_fences(text):  # a heading's code spans count in its slug
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            base = slug(heading.group(1))
            count = seen.get(base, 0)
            found.add(base if count == 0 else f"{base}-{count}")
            seen[base] = count + 1
    return found


def relative_links(page: Path) -> list[tuple[Path, str]]:
    """(target file, anchor or '') of each link to this repository's files."""
    found = []
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        found.append(((page.parent / path).resolve() if path else page, anchor))
    return found


def test_the_readme_is_a_front_page() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines: move reference text to docs/"
    assert "make demo" in README.read_text() and "make test" in README.read_text()


def test_every_docs_page_is_reachable_from_the_readme() -> None:
    reached, queue = {README}, [README]
    while queue:
        for target, _ in relative_links(queue.pop()):
            if target.suffix == ".md" and target.is_file() and target not in reached:
                reached.add(target)
                queue.append(target)
    unreached = [name(page) for page in pages() if page not in reached]
    assert not unreached, f"no chain of links from README.md reaches {unreached}"


def test_every_link_and_anchor_resolves() -> None:
    checked, broken = 0, []
    for page in pages():
        for target, anchor in relative_links(page):
            checked += 1
            if not target.exists():
                broken.append(f"{name(page)}: {target} does not exist")
            elif anchor and (target.suffix != ".md" or anchor not in anchors(target)):
                broken.append(f"{name(page)}: no heading '#{anchor}' in {name(target)}")
    assert not broken, "\n".join(broken)
    assert checked > 50


def test_the_slug_rules_are_githubs() -> None:
    assert slug("Promotion: `build.py`") == "promotion-buildpy"
    assert slug("Base infrastructure: `infra/`") == "base-infrastructure-infra"
    assert slug("8. What stays unproven") == "8-what-stays-unproven"
    assert slug("Days of a deployed stage: partitions, exactly once, backfill") == (
        "days-of-a-deployed-stage-partitions-exactly-once-backfill"
    )
    assert slug("`get_pipeline` options (keyword-only)") == "get_pipeline-options-keyword-only"
    page = DOCS / "deploying-to-aws.md"
    assert {"check-start-token", "3-github-setup", "the-acceptance-workflow-optional"} <= (
        anchors(page)
    )


def repository_path(span: str) -> bool:
    """Whether a code span names a file or folder of this repository (not a build output, an
    S3 key, a container path, a placeholder or a glob)."""
    if re.search(r"\s|[<>*{}$?]|://|\.\.\.|^/|^build/|^~", span) or "/" not in span:
        return False
    if span.endswith(FILE_ENDINGS):
        return True
    top = span.split("/", 1)[0]
    last = span.rstrip("/").rsplit("/", 1)[-1]
    return (REPO / top).is_dir() and not top.startswith(".venv") and "." not in last


def test_every_repository_path_the_docs_name_exists() -> None:
    assert repository_path("pipelines/partition_runs.py")
    assert repository_path("local_mode/") and repository_path("infra/target-account")
    assert not repository_path("build/demo/<stage>-model/")
    assert not repository_path("s3://b/p/data/") and not repository_path("/opt/ml/model")
    assert not repository_path("image_uri_config/*.json")
    named, missing = set(), []
    for page in pages():
        for span in code_spans(page.read_text(encoding="utf-8")):
            if repository_path(span):
                named.add(span)
                if span not in NOT_OURS and not (REPO / span).exists():
                    missing.append(f"{name(page)}: `{span}`")
    assert not missing, "named in the docs, not in the repository:\n" + "\n".join(missing)
    assert len(named) > 50
    for span in NOT_OURS:  # still named, and still not ours
        assert span in named and not (REPO / span).exists(), span


def table_codes(page: Path, heading: str) -> dict[int, str]:
    """The first table under ``heading`` in ``page``: its codes and meanings."""
    text = page.read_text(encoding="utf-8")
    section = text.split(f"\n{heading}\n", 1)
    assert len(section) == 2, f"{name(page)} has no '{heading}'"
    body = re.split(r"\n#{1,6} ", section[1], maxsplit=1)[0]
    rows = re.findall(r"^\|\s*(\d+)\s*\|\s*(.*?)\s*\|\s*$", body, flags=re.MULTILINE)
    codes = {int(code): meaning for code, meaning in rows}
    assert len(codes) == len(rows), f"{name(page)}: a code is listed twice"
    return codes


def test_build_py_exit_codes_are_the_table() -> None:
    defined, queue = {errors.PromotionError.exit_code}, [errors.PromotionError]
    while queue:
        for subclass in queue.pop().__subclasses__():
            defined.add(subclass.exit_code)
            queue.append(subclass)
    table = table_codes(DOCS / "promotion.md", "## Exit codes")
    assert set(table) == defined, (
        f"defined in promotion/errors.py, not in the table: {sorted(defined - set(table))}; "
        f"in the table, not defined: {sorted(set(table) - defined)}"
    )


def test_pipeline_cli_exit_codes_are_the_table() -> None:
    defined = {
        value
        for key, value in vars(exit_codes).items()
        if key.isupper() and isinstance(value, int) and not isinstance(value, bool)
    }
    table = table_codes(DOCS / "operations.md", "## Exit codes of the pipeline CLIs")
    assert set(table) == defined, (
        f"defined in common/exit_codes.py, not in the table: {sorted(defined - set(table))}; "
        f"in the table, not defined: {sorted(set(table) - defined)}"
    )


def test_one_word_per_concept() -> None:
    found = []
    for page in pages():
        lines = without_code(page.read_text(encoding="utf-8"))
        for number, line in enumerate(lines, 1):
            prose = re.sub(r'<a id="[^"]*"></a>|\]\([^)]*\)', "", line)  # anchors, link targets
            for word in re.findall(r"\bpreprod\b|\bstage configs?\b", prose, re.IGNORECASE):
                found.append((name(page), number, word))
    wrong = [f"{at}:{number}: {word}" for at, number, word in found if at not in WORDING_EXCUSED]
    assert not wrong, "say 'pre-prod' and 'stage file' in prose:\n" + "\n".join(wrong)
    for excused in WORDING_EXCUSED:  # an excuse that is no longer needed goes
        assert any(at == excused for at, _, _ in found), f"{excused} needs no excuse any more"


SETTINGS_TABLE = "<!-- the stage file's settings: tests/test_docs.py checks this table -->"


def settings_table() -> str:
    """The stage file's settings as the docs list them: every setting the offline check
    (promotion/stage_config.py) knows, with its rule, and the template variable's type,
    default and description."""
    from promotion.stage_config import SETTINGS
    from tests.terraform_cli import declared_variables

    variables = declared_variables()

    def default(name: str) -> str:
        if "default" not in variables[name]:
            return "required"
        value = variables[name]["default"]
        if value is None:
            return "null"
        return f"`{value.strip(chr(34)) if isinstance(value, str) else json.dumps(value)}`"

    rows = [
        "| setting | type | default | valid values | what it sets |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, setting in SETTINGS.items():
        text = " ".join(variables[name]["description"].strip('"').split())
        description = text.replace("|", "\\|").replace("<", "&lt;")  # no HTML in a table
        kind = setting.terraform_type  # the template's, held equal by tests/test_terraform.py
        # a choice of literal values ("fail or warn") shows them as values
        rule = re.sub(r"^(\w+) or (\w+)$", r"`\1` or `\2`", setting.rule)
        rows.append(f"| `{name}` | {kind} | {default(name)} | {rule} | {description} |")
    return "\n".join(rows)


def test_the_stage_settings_table_is_the_settings() -> None:
    """docs/stage-template.md lists every stage file setting from the code that owns it, so
    the table cannot drift: on a difference the failure message holds the table to paste."""
    page = (DOCS / "stage-template.md").read_text(encoding="utf-8")
    assert SETTINGS_TABLE in page, f"docs/stage-template.md lacks the line {SETTINGS_TABLE}"
    lines = page.split(SETTINGS_TABLE, 1)[1].lstrip("\n").splitlines()
    shown = "\n".join(line for line in lines[: next(
        (i for i, line in enumerate(lines) if not line.startswith("|")), len(lines)
    )])  # fmt: skip
    expected = settings_table()
    assert shown == expected, "the table should read:\n" + expected
