"""Each role's README documents exactly the options of its argument spec, with the same defaults.

The variables table of roles/<role>/README.md is the first Markdown table whose header starts with
"name" or "variable" and has a "default" column; its first column is the variable name as a code
span. It is compared with roles/<role>/meta/argument_specs.yml (entry point main):

- every option has one row, and every row names an option;
- a required option says "required" in the default column (more words may follow: "required, secret");
- an optional option never says "required" there, and shows its default either as one code span
  equal to the spec's default (read as YAML; a string also as written, so `{{ x }}` and `0660`
  read as themselves), or, when the default is a list, a dict or a template, in words: a list
  must then name every item and a dict every key and value;
- a secret that is optional without default (required in some configurations) says "none";
- "secret" appears in the row exactly when the option, or one of its suboptions, has no_log;
- each of an option's choices appears in its row as a code span.

A table whose header starts with "key" documents the suboptions of the option named as a code
span in the text just above it (for example "Keys of each item of `logrotate_policies`:"), by the
same rules.
"""

import pathlib
import re

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir())

CELL_SPLIT = re.compile(r"(?<!\\)\|")
CODE_SPAN = re.compile(r"`([^`]+)`")
REQUIRED = re.compile(r"\brequired\b", re.IGNORECASE)
SECRET = re.compile(r"\bsecrets?\b", re.IGNORECASE)


def _spec(role):
    with open(ROOT / "roles" / role / "meta" / "argument_specs.yml", encoding="utf-8") as handle:
        return (yaml.safe_load(handle) or {})["argument_specs"]["main"].get("options") or {}


def _cells(line):
    line = line.strip()
    line = line.removeprefix("|")
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    return [cell.strip().replace("\\|", "|") for cell in CELL_SPLIT.split(line)]


def _tables(text):
    """(header cells, [(line number, row cells)], text above) for every table of a Markdown text."""
    lines = text.splitlines()
    tables, index = [], 0
    while index < len(lines):
        is_table = (lines[index].lstrip().startswith("|") and index + 1 < len(lines)
                    and re.fullmatch(r"\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*", lines[index + 1]))
        if not is_table:
            index += 1
            continue
        above = []
        for previous in reversed(lines[:index]):
            if not previous.strip():
                if above:
                    break
                continue
            above.insert(0, previous)
        header = [cell.lower() for cell in _cells(lines[index])]
        rows, index = [], index + 2
        while index < len(lines) and lines[index].lstrip().startswith("|"):
            rows.append((index + 1, _cells(lines[index])))
            index += 1
        tables.append((header, rows, " ".join(above)))
    return tables


def _same(documented, default):
    """Equal values of equal types (True is not 1, "5" is not 5), through lists and dicts."""
    if isinstance(default, dict):
        return (isinstance(documented, dict) and documented.keys() == default.keys()
                and all(_same(documented[k], default[k]) for k in default))
    if isinstance(default, list):
        return (isinstance(documented, list) and len(documented) == len(default)
                and all(_same(a, b) for a, b in zip(documented, default)))
    return type(documented) is type(default) and documented == default


def _code_value_matches(raw, default):
    if isinstance(default, str) and raw == default:
        return True
    try:
        return _same(yaml.safe_load(raw), default)
    except yaml.YAMLError:
        return False


def _named(word, text):
    """The word stands in the text on its own (not as part of a longer name)."""
    return re.search(rf"(?<![\w.-]){re.escape(str(word))}(?![\w-]|\.\w)", text) is not None


def _has_no_log(option):
    return bool(option.get("no_log")) or any(
        _has_no_log(sub or {}) for sub in (option.get("options") or {}).values())


def _default_problem(default_cell, option):
    """What is wrong with how the default column shows the option's default (None when right)."""
    if option.get("required"):
        if not REQUIRED.search(default_cell):
            return f"the spec marks it required, the README's default column says {default_cell!r}"
        return None
    if "default" not in option and option.get("no_log"):
        # A secret required only in some configurations has no default: the column says "none".
        if re.search(r"\bnone\b", default_cell, re.IGNORECASE):
            return None
        return f"a secret without default: the README's default column should say none, not {default_cell!r}"
    default = option.get("default")
    if REQUIRED.search(default_cell):
        return f"the README says required, the spec makes it optional with default {default!r}"
    whole_code = re.fullmatch(r"`([^`]+)`", default_cell)
    if whole_code:
        if _code_value_matches(whole_code.group(1), default):
            return None
        return f"the README's default {whole_code.group(1)!r} differs from the spec's default {default!r}"
    if isinstance(default, list) and default:
        missing = [item for item in default if not _named(item, default_cell)]
        if missing:
            return (f"the README's default {default_cell!r} does not name the items {missing!r} "
                    f"of the spec's default {default!r}")
        return None
    if isinstance(default, dict) and default:
        missing = [f"{key}: {value}" for key, value in default.items()
                   if not (_named(key, default_cell) and _named(value, default_cell))]
        if missing:
            return (f"the README's default {default_cell!r} does not name {missing!r} "
                    f"of the spec's default {default!r}")
        return None
    if isinstance(default, str) and "{{" in default:
        return None
    return (f"the README's default {default_cell!r} should be the spec's default {default!r} "
            f"as a code span")


def _check_table(where, rows, columns, options):
    """Problems of one variables table against the options it documents."""
    problems, seen = [], {}
    name_col, default_col = columns
    for line, cells in rows:
        if len(cells) <= max(name_col, default_col):
            problems.append(f"{where}:{line}: row has {len(cells)} cells, expected name and default columns")
            continue
        match = re.fullmatch(r"`([^`]+)`", cells[name_col])
        if not match:
            problems.append(f"{where}:{line}: first cell {cells[name_col]!r} is not a variable name as a code span")
            continue
        name = match.group(1)
        if name in seen:
            problems.append(f"{where}:{line}: {name} is documented twice (first on line {seen[name]})")
            continue
        seen[name] = line
        if name not in options:
            problems.append(f"{where}:{line}: {name} is documented but the argument spec has no such option")
            continue
        option = options[name] or {}
        problem = _default_problem(cells[default_col], option)
        if problem:
            problems.append(f"{where}:{line}: {name}: {problem}")
        row_text = " | ".join(c for i, c in enumerate(cells) if i != name_col)
        if _has_no_log(option) != bool(SECRET.search(row_text)):
            problems.append(
                f"{where}:{line}: {name}: " + ("the spec has no_log, the README does not call it secret"
                                               if _has_no_log(option) else
                                               "the README calls it secret, the spec has no no_log"))
        spans = set(CODE_SPAN.findall(row_text))
        missing = [str(c) for c in option.get("choices") or [] if str(c) not in spans]
        if missing:
            problems.append(f"{where}:{line}: {name}: choices {missing} of the spec are not listed "
                            f"(as code spans) in the README")
    for name in options:
        if name not in seen:
            problems.append(f"{where}: {name} is an option of the argument spec but has no row in the table")
    return problems


def _columns(header, first):
    if not header or header[0] not in first or "default" not in header:
        return None
    return 0, header.index("default")


@pytest.mark.parametrize("role", ROLES)
def test_readme_variables_match_argument_spec(role):
    readme = ROOT / "roles" / role / "README.md"
    where = f"roles/{role}/README.md"
    options = _spec(role)
    tables = _tables(readme.read_text(encoding="utf-8"))
    candidates = [(rows, _columns(header, ("name", "variable"))) for header, rows, _above in tables]
    main = [(rows, columns) for rows, columns in candidates if columns]
    assert main, f"{where}: no variables table (a table with columns name or variable, default, description)"
    rows, columns = main[0]
    problems = _check_table(where, rows, columns, options)
    for header, rows, above in tables:
        columns = _columns(header, ("key",))
        if not columns:
            continue
        parents = [n for n in CODE_SPAN.findall(above) if n in options]
        if len(parents) != 1:
            problems.append(f"{where}: a table of keys must follow text that names its option as a code span, "
                            f"found {parents or 'none'} in {above!r}")
            continue
        sub = options[parents[0]].get("options")
        if not sub:
            problems.append(f"{where}: keys are documented for {parents[0]}, which has no suboptions in the spec")
            continue
        problems += _check_table(f"{where} (keys of {parents[0]})", rows, columns, sub)
    assert not problems, f"{len(problems)} difference(s) between README and argument spec:\n" + "\n".join(problems)


@pytest.mark.parametrize("cell, option, ok", [
    ("*required*", {"required": True}, True),
    ("required, secret", {"required": True}, True),
    ("`app`", {"required": True}, False),
    ("required", {"default": "x"}, False),
    ("`5432`", {"default": 5432}, True),
    ("`'5432'`", {"default": 5432}, False),
    ("`true`", {"default": True}, True),
    ("`1`", {"default": True}, False),
    ("`'0660'`", {"default": "0660"}, True),
    ("`0660`", {"default": "0660"}, True),
    ("`\"\"`", {"default": ""}, True),
    ("`[celery]`", {"default": ["celery"]}, True),
    ("`[]`", {"default": ["celery"]}, False),
    ("`{{ a | b }}`", {"default": "{{ a | b }}"}, True),
    ("a, b and c", {"default": ["a", "b", "c"]}, True),
    ("a and b", {"default": ["a", "b", "c"]}, False),
    ("`k: v`", {"default": {"k": "v"}}, True),
    ("`net.core.somaxconn: 4096`", {"default": {"net.core.somaxconn": 4096, "vm.swappiness": 10}}, False),
    ("computed from facts", {"default": "{{ ansible_facts.memtotal_mb }}"}, True),
    ("computed from facts", {"default": "auto"}, False),
])
def test_default_cell_rules(cell, option, ok):
    assert (_default_problem(cell, option) is None) is ok, _default_problem(cell, option)
