"""docs/cli.md is the command reference generated from the argument parser; it must agree."""

from __future__ import annotations

from pathlib import Path

from bilevel_bench.cli import build_parser
from bilevel_bench.cli_reference import COMMAND, commands, main, reference

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def test_docs_cli_md_matches_the_parser():
    assert DOCS.read_text(encoding="utf-8") == reference(), (
        f"docs/cli.md disagrees with the argument parser: regenerate it with `{COMMAND}`")


def test_the_synopsis_names_every_command_and_option():
    text = reference()
    synopsis = text.split("## Synopsis", 1)[1].split("```", 2)[1]
    for name, _, parser in commands(build_parser()):
        assert f"bilevel-bench {name}" in synopsis
        for action in parser._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert option in text, option
    for needed in ("--ruleset default|reference|tuned", "--backend local|inline|dask|submitit",
                   "--sandbox", "bilevel-bench submit", "bilevel-bench verify"):
        assert needed in synopsis, needed


def test_main_prints_the_reference(capsys):
    assert main([]) == 0
    assert capsys.readouterr().out == reference()
    assert main(["extra"]) == 2
