"""The command line in front of Hydra: each command's own `--help`, and its arguments checked before Hydra
composes them, so that a mistake gets one line naming the key and the fix.

Hydra's generic help lists every config group, also those a command rejects, and says nothing of the command.
Hydra answers a misspelt key (`ensmble=8`) with advice to add it (`+ensmble=8`), which then runs without
it. Here a key must be one of the command's config (medivision/conf/<name>.yaml: its keys, the groups its
defaults list, `hydra`); `+` adds keys only inside a config group (`+experiment=demo`, `+trainer.max_time=...`);
and a mandatory key (`???`) left out is named with its comment.
"""

from __future__ import annotations

import difflib
import functools
import re
import sys
from collections.abc import Callable
from pathlib import Path

CONF = Path(__file__).resolve().parent.parent / "conf"


def command_line(name: str, summary: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Decorate a command's `@hydra.main` entry point (outermost): `--help`/`-h` prints `summary` and the keys of
    conf/<name>.yaml with their comments; arguments that name no key of it, or leave out a mandatory one, end
    the command with one line on stderr and exit status 1."""

    def decorate(main: Callable[[], None]) -> Callable[[], None]:
        @functools.wraps(main)
        def run() -> None:
            arguments = sys.argv[1:]
            if "--help" in arguments or "-h" in arguments:
                print(help_text(name, summary))
                raise SystemExit(0)
            problem = argument_problem(name, arguments)
            if problem:
                print(f"medivision.{name}: {problem}", file=sys.stderr)
                raise SystemExit(1)
            main()

        return run

    return decorate


def argument_problem(name: str, arguments: list[str]) -> str | None:
    """What is wrong with a command's `key=value` arguments, in one line; None when nothing is."""
    keys, groups = config_keys(name)
    known = sorted(keys | groups | {"hydra"})
    given = set()
    for argument in arguments:
        if argument.startswith("-") or "=" not in argument:
            continue  # Hydra's flags (-m, --cfg job, ...) and their values
        key = argument.split("=", 1)[0]
        first = re.split(r"[./]", key.lstrip("+~"), maxsplit=1)[0]
        given.add(first)
        if first not in (groups | _group_folders() if key.startswith("+") else known):
            close = difflib.get_close_matches(first, known, n=1)
            hint = f"did you mean {close[0]}=? " if close else ""
            return (f"{key.lstrip('+~')} is not a key of {name} ({hint}see --help for its keys); keys are not added "
                    "with +, so that a misspelt one cannot go unnoticed")
    for key, comment in mandatory_keys(name).items():
        if key not in given:
            return f"{key}= is missing: pass {key}=... ({comment})" if comment else f"{key}= is missing"
    return None


def config_keys(name: str) -> tuple[set[str], set[str]]:
    """The top-level keys of conf/<name>.yaml and the config groups of its defaults list."""
    keys, groups = set(), set()
    for line in _text(name).splitlines():
        entry = re.match(r"^  - (?:override )?([\w/]+):", line)
        if entry:
            groups.add(entry.group(1).split("/")[0])
        key = re.match(r"^(\w+):", line)
        if key and key.group(1) != "defaults":
            keys.add(key.group(1))
    return keys, groups


def mandatory_keys(name: str) -> dict[str, str]:
    """The keys of conf/<name>.yaml set to ??? (each must be given), with their comments."""
    return {match.group(1): match.group(2) or "" for match in
            re.finditer(r"^(\w+): \?\?\?\s*(?:#\s*(.*))?$", _text(name), re.MULTILINE)}


def help_text(name: str, summary: str) -> str:
    """`--help`: the command's summary, its keys with their comments (the config file without its defaults list
    and Hydra section), and the options of each config group it composes."""
    lines = [summary.strip(), "", f"Usage: medivision-{name.replace('_', '-')} key=value ...  "
             f"(or python -m medivision.{name} key=value ...)", "",
             f"Keys, with their defaults (medivision/conf/{name}.yaml):"]
    skipping = True  # the file's opening comment says what the summary says
    for line in _text(name).splitlines():
        if re.match(r"^\w", line):
            skipping = line.startswith(("defaults:", "hydra:"))
        if not skipping and line.strip():
            lines.append("  " + line)
    groups = sorted(config_keys(name)[1] - {"hydra"})
    if groups:
        lines += ["", "Config groups (choose an option: group=option; any key inside: group.key=value):"]
        lines += [f"  {group}: {', '.join(sorted(path.stem for path in (CONF / group).glob('*.yaml')))}"
                  for group in groups]
    return "\n".join(lines)


def _text(name: str) -> str:
    return (CONF / f"{name}.yaml").read_text()


@functools.lru_cache(maxsize=1)
def _group_folders() -> frozenset[str]:
    return frozenset(path.name for path in CONF.iterdir() if path.is_dir() and not path.name.startswith("_"))
