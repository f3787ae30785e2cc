"""The README's code, as a new user copies it: every Python block runs as written (in a folder
holding the micrographs it names), and every command line of every shell block is parsed by the
real ``emzoo`` parser, so a renamed flag or command fails here before a user meets it. The cheap
commands also run; training, export, the Space and the setup script are covered by their own
tests (test_train, test_bioimageio, test_space, CI's fresh clone)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import mrcfile
import numpy as np
import pytest

import emzoo
from tests.dm_files import write_dm

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", README, re.S)
PYTHON = [body for lang, body in BLOCKS if lang == "python"]
# budgets shrunk so the blocks run in seconds; nothing else of a block is changed
SHRINK = {"minutes=3": "steps=2"}
# commands run for real (quick, offline); the others are parsed only
RUN = ("list", "info", "data simulate", "predict emzoo/examples")


def _commands() -> list[tuple[str, bool]]:
    """Each ``emzoo`` command line of the shell blocks, and whether the README shows it failing
    (a transcript whose next line is ``emzoo: error: ...``)."""
    commands = []
    for lang, body in BLOCKS:
        lines = [line.strip() for line in body.splitlines()]
        for number, line in enumerate(lines):
            if lang == "" and not line.startswith("$ "):
                continue  # output shown in a transcript
            following = lines[number + 1] if number + 1 < len(lines) else ""
            line = line.removeprefix("$ ").split(" | ")[0].split(" # ")[0].split("  #")[0].strip()
            for part in line.split("&&"):
                part = part.strip().removeprefix(".venv/bin/")
                if part.startswith("emzoo "):
                    commands.append((part, following.startswith("emzoo: error")))
    return commands


def _micrographs(folder: Path) -> None:
    """The files the Python blocks name: a HAADF DM4, a single DM4 and an MRC frame series."""
    image, meta = emzoo.io.read(ROOT / "emzoo" / "examples" / "haadf_nanoparticles.tif")
    write_dm(folder / "my_haadf.dm4", image.astype(np.float32), meta["pixel_size_nm"], version=4)
    rng = np.random.default_rng(0)
    noisy = image[:96, :96] + rng.normal(0, image.std() / 2, (96, 96))
    write_dm(folder / "a.dm4", noisy.astype(np.float32), meta["pixel_size_nm"], version=4)
    frames = image[None, :96, :96] + rng.normal(0, image.std() / 2, (3, 96, 96))
    with mrcfile.new(folder / "movie_01.mrc") as mrc:
        mrc.set_data(frames.astype(np.float32))
        mrc.voxel_size = meta["pixel_size_nm"] * 10


def test_readme_has_python_and_commands():
    assert len(PYTHON) >= 3 and len(_commands()) >= 15


@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_python_block_runs_as_written(index, tmp_path, monkeypatch):
    code = PYTHON[index]
    for written, quick in SHRINK.items():
        code = code.replace(written, quick)
    _micrographs(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    exec(compile(code, f"README.md python block {index}", "exec"), {"__name__": "__readme__"})


def test_every_command_parses_and_the_quick_ones_run(tmp_path, monkeypatch, capsys):
    from emzoo.cli import build_parser, main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ran = set()
    for line, fails in _commands():
        argv = shlex.split(line)[1:]
        try:
            build_parser(argv).parse_args(argv)
        except SystemExit as e:  # argparse's way of refusing a command line
            raise AssertionError(f"README command does not parse: {line}") from e
        if not any(line.startswith(f"emzoo {prefix}") for prefix in RUN) or line in ran:
            continue
        argv = [a.replace("emzoo/examples", str(ROOT / "emzoo" / "examples")) for a in argv]
        if line.startswith(("emzoo list", "emzoo info")):  # cheap: in this process, by the real CLI
            code, err = main(argv), capsys.readouterr().err
        else:  # the work a user waits for: a process of its own, as typed
            proc = subprocess.run(
                [sys.executable, "-m", "emzoo", *argv],
                capture_output=True,
                text=True,
                timeout=300,
                env={**os.environ, "HF_HUB_OFFLINE": "1"},
            )
            code, err = proc.returncode, proc.stderr
        assert code == (2 if fails else 0), f"{line}: {err[-2000:]}"
        ran.add(line)
    assert len(ran) >= 4
