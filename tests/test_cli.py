"""The command line as users run it: real subprocesses, one-line errors, no tracebacks."""

import os
import subprocess
import sys

import emzoo
from tests.conftest import build_hf_cache


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "emzoo", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
        timeout=300,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("emzoo: error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_list_and_info():
    proc = run("list", "unet-2-*-cem500k")
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[0] for line in proc.stdout.splitlines()] == [
        "unet-2-116-cem500k",
        "unet-2-44-cem500k",
        "unet-2-84-cem500k",
    ]
    proc = run("info", "hrnet-cem500k")
    assert proc.returncode == 0 and '"arch": "emzoo_hrnet_w18"' in proc.stdout


def test_cli_errors(tmp_path):
    assert_one_line_error(run("info", "hrnet-cem50k"), "unknown model 'hrnet-cem50k'", "did you mean 'hrnet-cem500k'")
    assert_one_line_error(run("list", "nothing-*"), "no zoo entry matches 'nothing-*'")
    assert_one_line_error(
        run("download", "hrnet-cem500k", env={"HF_HUB_CACHE": str(tmp_path)}),
        "emzoo/hrnet-cem500k@v1.0",
        str(tmp_path),
    )


def test_download_from_cache_verifies(tmp_path):
    entry = emzoo.ZOO["unet-3-96-cem500k"]
    folder = emzoo.save_pretrained(emzoo.create_model(entry.arch), tmp_path / "m")
    cache = tmp_path / "cache"
    snapshot = build_hf_cache(cache, entry.hub_id, folder, refs=("v1.0", "v2"))
    proc = run("download", entry.name, "--revision", "v2", env={"HF_HUB_CACHE": str(cache)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(snapshot)


def test_library_names_its_arguments_and_the_cli_words_them_as_flags(tmp_path):
    """The library never quotes a flag; the CLI turns the argument names into the flags typed."""
    from emzoo.cli import _as_flags, _flags_of, build_parser

    flags = _flags_of(build_parser(["adapt"]), "adapt")
    assert _as_flags("patch=4: expected a whole number >= 16", flags) == "--patch-size 4: expected a whole number >= 16"
    assert _as_flags("x.mrc: a stack; use frames='mean'", _flags_of(build_parser(["predict"]), "predict")) == (
        "x.mrc: a stack; use --frames mean"
    )
    assert _as_flags("lower `batch_size`; pass overwrite=True", _flags_of(build_parser(["predict"]), "predict")) == (
        "lower --batch-size; pass --overwrite"
    )
    assert _as_flags("unknown=3 and `nothing`", flags) == "unknown=3 and `nothing`"
    assert_one_line_error(
        run("data", "corpus", "--n-train", "-1", "--out", str(tmp_path / "c")), "--n-train -1: expected a count"
    )
    assert_one_line_error(
        run("data", "simulate", "--task", "denoise", "--n", "2", "--out", str(tmp_path / "s")), "--n 2:"
    )
