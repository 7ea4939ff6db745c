"""The mutation list (tests/mutations.py) stays applicable: every entry's snippet is still in the
source exactly once and its mutated file still parses. A refactor that moves a snippet fails here,
in the default run, instead of leaving a mutation that no longer mutates anything."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import mutations  # noqa: E402


def test_every_mutation_snippet_is_in_the_source_once():
    assert mutations.check_snippets(mutations.MUTATIONS) == []
