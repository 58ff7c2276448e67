"""The operator's docs cannot drift from the code: the configuration table is generated from `Settings`."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("settings_table", ROOT / "scripts" / "settings_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_operations_doc_has_exactly_the_generated_settings_table() -> None:
    table = generator()
    document = (ROOT / "docs" / "operations.md").read_text()
    expected = table.replace_table(document, table.settings_table())
    assert document == expected, "docs/operations.md is out of date: run `python scripts/settings_table.py --write`"


def test_every_setting_is_in_the_table() -> None:
    from dataclasses import fields

    from quizroom.server.settings import Settings

    table = generator().settings_table()
    for f in fields(Settings):
        assert f"`QUIZROOM_{f.name.upper()}`" in table and f"`--{f.name.replace('_', '-')}`" in table
