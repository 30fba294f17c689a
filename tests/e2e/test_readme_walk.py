"""README.md's walk, run as written: every shell block of "A walk through the local stack", command by
command and in order, against a fresh local stack (`python -m infra.local`, as `make run` starts it).

What the README promises is checked as it says it:
- a `<name>` placeholder is filled from the latest JSON answer that has a `name` key;
- a `# -> HTTP 404` line under a command is the HTTP status its (last) request answers;
- any other `# -> text` line is a fragment its output holds (`...` stands for any characters inside
  a string, spaces after `:` and `,` are free);
- every other command exits 0 and, when it is a request, answers below 400.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from local_stack import start_local_stack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
WALK = "## A walk through the local stack"
COMMAND_SECONDS = 180
PLACEHOLDER = re.compile(r"<([a-z_]+)>")
# a command that only sets a shell variable: a word, or one command substitution
ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(\$\(.*\)|[^\s$]\S*)$", re.S)


@dataclass
class Command:
    text: str
    expects: list[str] = field(default_factory=list)


def walk_blocks(readme: str) -> list[list[Command]]:
    """The ```sh blocks between the walk's heading and the next `## ` heading, as commands."""
    section = readme[readme.index(WALK):]
    following = section.find("\n## ", len(WALK))
    section = section if following < 0 else section[:following]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    return [commands_of(block) for block in blocks]


def commands_of(block: str) -> list[Command]:
    commands: list[Command] = []
    pending = ""
    for line in block.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            if stripped.startswith("# ->"):
                assert commands, f"an expectation before any command: {line!r}"
                commands[-1].expects.append(stripped[len("# ->"):].strip())
            continue
        pending += line + "\n"
        if stripped.endswith("\\"):
            continue
        try:
            shlex.split(pending, comments=True)
        except ValueError:  # a quoted string goes on on the next line
            continue
        commands.append(Command(pending.rstrip("\n")))
        pending = ""
    assert not pending, f"unfinished command in the README: {pending!r}"
    return commands


def fragment(expected: str) -> re.Pattern[str]:
    pattern = re.escape(expected).replace(r"\.\.\.", r'[^"]*')
    for separator in (":", ","):
        pattern = pattern.replace(re.escape(separator) + r"\ ", re.escape(separator) + r"\s*")
    return re.compile(pattern)


def keys_in(value: Any, name: str) -> list[Any]:
    if isinstance(value, dict):
        found = [value[name]] if name in value else []
        return found + [hit for child in value.values() for hit in keys_in(child, name)]
    if isinstance(value, list):
        return [hit for child in value for hit in keys_in(child, name)]
    return []


def test_the_readme_walk_runs_as_written(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                                         tmp_path: Path) -> None:
    blocks = walk_blocks(README.read_text())
    assert len(blocks) >= 2 and sum(len(block) for block in blocks) >= 30, "the walk went missing from README.md"
    base_url = start_local_stack(request, tmp_path_factory)
    port = base_url.rsplit(":", 1)[1]
    headers = tmp_path / "headers"
    # -D: every request's status line lands in a file (a command's own -D or -o wins, as curl takes the last)
    prelude = f'set -o pipefail\ncurl() {{ command curl -D "{headers}" "$@"; }}\n'
    answers: list[Any] = []  # JSON answers so far, newest last
    assignments = ""  # the shell variables set so far: one reader's shell, block after block
    for block in blocks:
        for command in block:
            text = command.text.replace("localhost:3000", f"127.0.0.1:{port}")
            text = re.sub(r"^make (\w+)", rf"make -s -C {shlex.quote(str(ROOT))} \1 PORT={port}", text)
            for name in PLACEHOLDER.findall(text):
                values = [value for answer in reversed(answers) for value in keys_in(answer, name)
                          if isinstance(value, str) and value][:1]
                assert values, f"no answer before {command.text!r} has a {name!r} to fill <{name}> with"
                text = text.replace(f"<{name}>", values[0])
            assignment = ASSIGNMENT.match(text)
            script = text + (f'\nprintf %s "${assignment.group(1)}"' if assignment else "")
            headers.unlink(missing_ok=True)
            done = subprocess.run(["bash", "-c", prelude + assignments + script], cwd=tmp_path, capture_output=True,
                                  text=True, timeout=COMMAND_SECONDS, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            output = done.stdout
            if assignment:  # evaluated once, as a reader's shell does: later commands see its value
                assert done.returncode == 0 and output, f"\n$ {command.text}\n{done.stderr[-2000:]}"
                assignments += f"{assignment.group(1)}={shlex.quote(output)}\n"
            statuses = re.findall(r"^HTTP/[\d.]+ (\d{3})", headers.read_text(), flags=re.M) if headers.exists() else []
            status = int(statuses[-1]) if statuses else None
            where = (f"\n$ {command.text}\n-> exit {done.returncode}, HTTP {status}\n{output[-3000:]}"
                     f"\n{done.stderr[-2000:]}")
            wanted = [int(expect.split()[1]) for expect in command.expects if expect.startswith("HTTP ")]
            assert done.returncode == 0, where
            if wanted:
                assert status == wanted[0], where
            elif status is not None:
                assert status < 400, where
            for expect in command.expects:
                if not expect.startswith("HTTP "):
                    assert fragment(expect).search(output), f"README says {expect!r}:{where}"
            with contextlib.suppress(ValueError):  # a variable holding an answer (NEXT=$(curl ...)) is one too
                answers.append(json.loads(output))
    for pdf in ("invoice.pdf", "credit-note.pdf"):
        assert (tmp_path / pdf).read_bytes().startswith(b"%PDF-"), f"the walk's {pdf} is not a PDF"
