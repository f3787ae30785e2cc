"""Test setup: offline Hub, quiet Gradio, CPU only. Env vars are set before anything imports
huggingface_hub, which reads them at import time."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import hashlib  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)


def trained_model(arch: str, **kw) -> torch.nn.Module:
    """A network with non-trivial batch-norm statistics (one train-mode forward), in eval mode."""
    import emzoo

    torch.manual_seed(0)
    m = emzoo.create_model(arch, **kw)
    with torch.no_grad():
        m.train()
        m(torch.randn(2, m.in_chans, 96, 96))
    return m.eval()


def build_hf_cache(cache: Path, repo_id: str, folder: Path, refs: tuple[str, ...] = ("main",)) -> Path:
    """Lay ``folder``'s files out as huggingface_hub's cache does: blobs by hash, a snapshot per
    commit whose files link to the blobs, and refs naming the commit. Returns the snapshot."""
    repo_dir = cache / f"models--{repo_id.replace('/', '--')}"
    files = sorted(p for p in folder.iterdir() if p.is_file())
    commit = hashlib.sha1(b"".join(p.read_bytes() for p in files)).hexdigest()
    snapshot = repo_dir / "snapshots" / commit
    (repo_dir / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for p in files:
        blob = repo_dir / "blobs" / hashlib.sha256(p.read_bytes()).hexdigest()
        shutil.copyfile(p, blob)
        link = snapshot / p.name
        link.symlink_to(os.path.relpath(blob, snapshot))
    (repo_dir / "refs").mkdir(exist_ok=True)
    for ref in refs:
        (repo_dir / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache that the real library (offline) resolves from."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache
