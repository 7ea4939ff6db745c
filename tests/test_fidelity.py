"""docs/fidelity.md is data: every row with a config key states the value each shipped paper config
holds, and every row marked "same" holds the authors' value. A config that drifts fails here."""
from __future__ import annotations

import re

import pytest
import yaml

from conftest import PROJECT_ROOT
from dfad.config import config_to_dict, load_config

FIDELITY = PROJECT_ROOT / "docs" / "fidelity.md"
PAPER_CONFIGS = ("mnist", "cifar10", "cifar100", "caltech101", "camvid", "nyuv2")
# What the table must cover for every paper config (from the shared table or the config's own).
REQUIRED_KEYS = ("teacher.model.arch", "distill.student.arch", "distill.generator", "distill.nz", "data.image_size",
                 "data.mean", "data.std", "distill.batch_size", "distill.iterations", "distill.imitation_steps",
                 "distill.student_optimizer", "distill.generator_optimizer", "distill.student_schedule",
                 "distill.generator_schedule", "distill.generation_student_bn", "teacher.batch_size",
                 "teacher.iterations", "teacher.optimizer", "teacher.schedule")


def _value(cell: str):
    """The YAML value in a cell's first backticked span, or None for a cell in words."""
    match = re.search(r"`([^`]*)`", cell)
    return None if match is None else yaml.safe_load(match.group(1))


def _rows() -> dict[str, list[dict]]:
    """Table rows by section: "*" for the facts shared by every config, else the config's name."""
    sections: dict[str, list[dict]] = {"*": []}
    section = "*"
    for line in FIDELITY.read_text().splitlines():
        heading = re.match(r"## `(\w+)`", line)
        if heading:
            section = heading.group(1)
            sections[section] = []
        elif line.startswith("## "):
            section = None  # prose sections hold no rows
        elif line.startswith("| ") and section is not None:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cells[0] == "setting" or set(cells[0]) <= {"-"}:
                continue
            assert len(cells) == 5, f"row of {len(cells)} cells: {line}"
            setting, key, authors, ours, status = cells
            sections[section].append({"setting": setting, "key": None if key == "—" else key.strip("`"),
                                      "authors": authors, "ours": ours, "status": status, "line": line})
    return sections


def _lookup(config: dict, dotted: str):
    node = config
    for part in dotted.split("."):
        assert isinstance(node, dict) and part in node, f"no config key {dotted}"
        node = node[part]
    return node


def _matches(expected, actual) -> bool:
    """Mappings match on the fields the table lists; lists of numbers element by element."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and _matches(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(expected) == len(actual) and all(map(_matches, expected, actual))
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        return isinstance(actual, (int, float)) and float(expected) == pytest.approx(float(actual), rel=1e-12)
    return expected == actual


def test_every_paper_config_has_a_section_and_every_required_key():
    sections = _rows()
    assert set(PAPER_CONFIGS) <= set(sections)
    shared = {row["key"] for row in sections["*"]}
    for name in PAPER_CONFIGS:
        covered = shared | {row["key"] for row in sections[name]}
        assert not set(REQUIRED_KEYS) - covered, f"{name}: no row for {sorted(set(REQUIRED_KEYS) - covered)}"


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_the_table_states_what_each_config_holds(name):
    config = config_to_dict(load_config(name))
    sections = _rows()
    for row in sections["*"] + sections[name]:
        if row["key"] is None:
            continue
        ours = _value(row["ours"])
        assert _matches(ours, _lookup(config, row["key"])), \
            f"{name}: {row['key']} is {_lookup(config, row['key'])!r}, docs/fidelity.md says {ours!r}"


def test_same_means_the_authors_value_and_every_difference_has_a_reason():
    for section, rows in _rows().items():
        for row in rows:
            if row["status"] == "same":
                if row["key"] is not None:
                    authors, ours = _value(row["authors"]), _value(row["ours"])
                    assert authors is not None and _matches(authors, ours), f"[{section}] {row['line']}"
            else:
                reason = re.fullmatch(r"differs — (.{10,})", row["status"])
                assert reason, f"[{section}] status must be 'same' or 'differs — reason': {row['line']}"
