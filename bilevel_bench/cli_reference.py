"""The command reference (``docs/cli.md``), generated from the argument parser.

``python -m bilevel_bench.cli_reference > docs/cli.md`` writes it: a synopsis of every command,
then per command its usage line and a table of its arguments with their help, all read from
:func:`bilevel_bench.cli.build_parser`. ``tests/test_cli_reference.py`` fails when the file and
the parser disagree. The usage lines are built here (not by argparse's formatter), so that the
text does not depend on the terminal's width or on the Python version.
"""

from __future__ import annotations

import argparse
import sys

from bilevel_bench.cli import build_parser

#: the command that regenerates the reference
COMMAND = ".venv/bin/python -m bilevel_bench.cli_reference > docs/cli.md"
#: width of the synopsis and usage lines
WIDTH = 100


def _metavar(action: argparse.Action) -> str:
    if action.metavar is not None:
        return str(action.metavar)
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        return "|".join(map(str, action.choices))
    return action.dest if not action.option_strings else action.dest.upper()


def _argument(action: argparse.Action) -> str:
    """An argument as the usage shows it, without brackets: ``--seeds N``, ``DIR [DIR ...]``;
    ``...`` after a repeatable option."""
    name = action.option_strings[0] if action.option_strings else ""
    if action.nargs == 0:
        return name
    value = _metavar(action)
    if action.nargs == "+":
        value = f"{value} [{value} ...]"
    elif action.nargs == "*":
        value = f"[{value} ...]"
    elif action.nargs == "?":
        value = f"[{value}]"
    repeat = " ..." if isinstance(action, argparse._AppendAction) else ""
    return f"{name} {value}{repeat}".strip()


def _shown(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The parser's arguments, without ``-h/--help``."""
    return [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]


def usage_parts(parser: argparse.ArgumentParser) -> list[str]:
    """The usage of one command as a list of parts: positional arguments, then options
    (optional ones in brackets, mutually exclusive ones grouped)."""
    grouped = {id(a): group for group in parser._mutually_exclusive_groups
               for a in group._group_actions}
    parts = [_argument(a) for a in _shown(parser) if not a.option_strings]
    done: set[int] = set()
    for action in _shown(parser):
        if not action.option_strings:
            continue
        group = grouped.get(id(action))
        if group is None:
            parts.append(_argument(action) if action.required else f"[{_argument(action)}]")
        elif id(group) not in done:
            done.add(id(group))
            inner = " | ".join(_argument(a) for a in group._group_actions)
            parts.append(f"({inner})" if group.required else f"[{inner}]")
    return parts


def wrap(head: str, parts: list[str], width: int = WIDTH) -> str:
    """``head`` followed by ``parts``, wrapped at ``width`` between parts, continuation lines
    indented under the first part."""
    lines, line = [], head
    indent = " " * (len(head) + 1)
    for part in parts:
        if len(line) + 1 + len(part) > width and line.strip() != head.strip():
            lines.append(line)
            line = indent + part
        else:
            line = f"{line} {part}"
    return "\n".join([*lines, line])


def commands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """``(name, help, parser)`` of every subcommand, in the parser's order."""
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
    return [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _help(action: argparse.Action) -> str:
    text = action.help or ""
    if "%(" in text:
        text = text % {**vars(action), "prog": ""}
    if action.choices is not None and not action.option_strings:
        text = text or "one of " + ", ".join(f"`{c}`" for c in action.choices)
    if action.required and action.option_strings:
        text += " (required)"
    return text


def reference(parser: argparse.ArgumentParser | None = None) -> str:
    """The markdown command reference of ``parser`` (default: the ``bilevel-bench`` parser)."""
    parser = parser or build_parser()
    prog = parser.prog
    subs = commands(parser)
    out = [
        "# Command reference",
        "",
        f"Generated from the argument parser of `{prog}` (`build_parser` in "
        "`bilevel_bench/cli.py`)",
        f"by `{COMMAND}`.",
        "`tests/test_cli_reference.py` fails when this file and the parser disagree: edit the",
        "parser's help, then regenerate this file. Every command also takes `-h`/`--help`; bad",
        "input exits with status 2 and one line that names the problem and the fix.",
        "",
        "## Synopsis",
        "",
        "```text",
        f"{prog} --version | --help",
        *(wrap(f"{prog} {name}", usage_parts(sub)) for name, _, sub in subs),
        "```",
        "",
    ]
    for name, summary, sub in subs:
        out += [f"## `{prog} {name}`", "", f"{summary[:1].upper()}{summary[1:]}.", "",
                "```text", wrap(f"{prog} {name}", usage_parts(sub)), "```", "",
                "| argument | meaning |", "| --- | --- |"]
        for action in _shown(sub):
            shown = _argument(action)
            if len(action.option_strings) > 1:  # -o, --output SITE
                shown = ", ".join(action.option_strings[:-1]) + ", " + \
                    shown.replace(action.option_strings[0], action.option_strings[-1], 1)
            out.append(f"| `{_cell(shown)}` | {_cell(_help(action))} |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Print the command reference (markdown) on standard output."""
    if argv if argv is not None else sys.argv[1:]:
        print(f"usage: {COMMAND}", file=sys.stderr)
        return 2
    sys.stdout.write(reference())
    return 0


if __name__ == "__main__":
    sys.exit(main())
