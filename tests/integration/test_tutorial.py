"""docs/tutorial.md, executed: every ``$`` line is run in order in a shell against a running
``pyao up``, and must print the lines under it (``…`` is any text; a line of only ``…`` any lines).

Shell variables set by ``NAME=$(command)`` carry over to later lines. A command whose output is
checked is retried (1 s apart, up to 20 times) until it matches, since pushed messages arrive
a moment later; ``sleep`` is shortened to at most 2 s (the MU polls crons every second here)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pyao.testing.network import running_network

pytestmark = pytest.mark.slow

TUTORIAL = Path(__file__).resolve().parents[2] / "docs" / "tutorial.md"
ASSIGN = re.compile(r"^([A-Z_][A-Z0-9_]*)=\$\((.*)\)$")


def steps(text: str) -> list[tuple[str, list[str]]]:
    """``(command, expected lines)`` for every ``$`` line of the ```sh blocks."""
    out: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                out.append((line[2:], []))
            elif out and line.strip() and block.lstrip().startswith("$ "):
                out[-1][1].append(line)
    return out


def pattern(expected: list[str]) -> re.Pattern[str]:
    parts = []
    for line in expected:
        if line.strip() == "…":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(r"[ \t]*" + re.escape(line.strip()).replace("…", r"[^\n]*") + r"[ \t]*\n")
    return re.compile("".join(parts))


def test_the_tutorial_runs_as_written(tmp_path):
    taken = steps(TUTORIAL.read_text())
    assert len(taken) >= 15 and any(expected for _, expected in taken)
    with running_network(tmp_path, env={"PYAO_MU_CRON_INTERVAL_S": "1"}) as net:
        env = {
            **os.environ,
            "PYAO_HOME": str(net.data_dir),
            "PYAO_WALLET": str(net.wallet_path),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        }
        for var in ("MU_URL", "CU_URL", "GATEWAY_URL"):
            env.pop(var, None)
        for command, expected in taken:
            if command.startswith("sleep "):
                time.sleep(min(float(command.split()[1]), 2.0))
                continue
            assigned = ASSIGN.match(command)
            run = assigned.group(2) if assigned else command
            want = pattern(expected) if expected else None
            for attempt in range(20):
                done = subprocess.run(
                    ["bash", "-c", run], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path
                )
                output = "\n".join(line.rstrip() for line in done.stdout.splitlines()) + "\n"
                if done.returncode == 0 and (want is None or want.fullmatch(output)):
                    break
                if want is None or attempt == 19:
                    pytest.fail(
                        f"$ {command}\nexit {done.returncode}\n{done.stdout}{done.stderr}\nwanted:\n"
                        + "\n".join(expected)
                    )
                time.sleep(1)
            if assigned:
                env[assigned.group(1)] = done.stdout.strip()
