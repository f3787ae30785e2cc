"""The Space as users meet it: a real Gradio server queried by gradio_client for every task,
and a real headless Chromium that uploads a micrograph, presses Run and sees the result."""

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import tifffile

import emzoo
from emzoo import io
from emzoo.space.app import CHROMIUM, CHROMIUM_ARGS, launch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from emzoo.space.app import build_demo

    root = tmp_path_factory.mktemp("space")
    folders = {}
    for task in ("segment", "denoise", "super-res"):
        folders[task] = str(emzoo.save_pretrained(emzoo.create_model("emzoo_unet_2_44"), root / task, task=task))
    image = root / "micrograph.tif"
    rng = np.random.default_rng(0)
    tifffile.imwrite(
        image,
        rng.integers(0, 65535, (96, 120), dtype=np.uint16),
        imagej=True,
        resolution=(20.0, 20.0),
        metadata={"unit": "nm"},
    )
    demo = build_demo(list(folders.values()))
    launch(demo, prevent_thread_lock=True, server_port=_free_port(), quiet=True)
    yield demo, folders, image, root
    demo.close()


@pytest.mark.parametrize("task,scale", [("segment", 1), ("denoise", 1), ("super-res", 2)])
def test_gradio_client_predict_endpoint(app, task, scale):
    from gradio_client import Client, handle_file

    demo, folders, image, _ = app
    client = Client(demo.local_url, verbose=False)
    result = client.predict(folders[task], handle_file(str(image)), api_name="/predict")
    out, meta = io.read(result)
    assert out.shape == (96 * scale, 120 * scale) and meta["source_dtype"] == "float32"
    assert meta["pixel_size_nm"] == pytest.approx(0.05 / scale)


def test_bad_upload_shows_a_message_and_the_app_keeps_serving(app):
    from gradio_client import Client, handle_file

    demo, folders, image, root = app
    client = Client(demo.local_url, verbose=False)
    bad = root / "notes.docx"
    bad.write_bytes(b"hello")
    with pytest.raises(Exception, match="unsupported format '.docx'") as error:
        client.predict(folders["denoise"], handle_file(str(bad)), api_name="/predict")
    assert "/tmp" not in str(error.value) and "gradio" not in str(error.value)  # no server paths
    stack = root / "stack.tif"
    tifffile.imwrite(stack, np.zeros((3, 16, 16), np.uint16), photometric="minisblack")
    with pytest.raises(Exception, match="stack.tif: a stack of 3 frames; the demo takes one image"):
        client.predict(folders["denoise"], handle_file(str(stack)), api_name="/predict")
    assert client.predict(folders["denoise"], handle_file(str(image)), api_name="/predict")


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed (.ci/run installs it)")
def test_headless_browser_upload_run_and_see_result(app):
    from playwright.sync_api import sync_playwright

    demo, folders, image, root = app
    shot = root / "space.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(demo.local_url)
        page.wait_for_selector("#run-button", timeout=60_000)
        page.set_input_files("input[type=file]", str(image))
        page.wait_for_timeout(1500)
        page.click("#run-button")
        page.wait_for_selector("#result-overlay img", timeout=120_000)
        page.wait_for_function("document.querySelector('#summary').innerText.includes('particles')", timeout=60_000)
        assert "particles" in page.inner_text("#summary")
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert shot.stat().st_size > 10_000


def test_only_the_models_it_was_started_with(app, tmp_path):
    """A server path that is not one of the Space's models is refused, whether it exists or
    not, with the same message (nothing about the server's file system)."""
    from gradio_client import Client, handle_file

    demo, folders, image, root = app
    client = Client(demo.local_url, verbose=False)
    elsewhere = emzoo.save_pretrained(emzoo.create_model("emzoo_unet_2_44"), tmp_path / "other", task="denoise")
    messages = []
    for name in (str(elsewhere), str(tmp_path / "missing")):
        with pytest.raises(Exception, match="this Space serves") as err:
            client.predict(name, handle_file(str(image)), api_name="/predict")
        messages.append(str(err.value).replace(Path(name).name, "NAME"))
        assert str(tmp_path) not in messages[-1] and str(root) not in messages[-1]  # no server paths
    assert messages[0] == messages[1]


def test_limits_and_typos_are_set_when_the_app_starts(app, tmp_path):
    """Gradio refuses oversized uploads itself and sweeps its cache; a mistyped model or port
    fails when the app starts, not when a visitor picks it."""
    from emzoo.errors import ConfigError, ModelNotFoundError
    from emzoo.space.app import MAX_UPLOAD_MB, build_demo, check_port

    demo = app[0]
    assert demo.max_file_size == MAX_UPLOAD_MB * 1024**2
    assert demo.delete_cache == (600, 1800)
    with pytest.raises(ModelNotFoundError, match="no such folder"):
        build_demo([str(tmp_path / "nonexistent")])
    with pytest.raises(ConfigError, match="port 99999: expected a TCP port"):
        check_port(99999)


def test_a_given_model_is_loaded_once(tmp_path, monkeypatch):
    """The models the Space is started with are loaded at start (to catch typos) and served from
    that load, not read a second time on the first visit."""
    from emzoo.space import app as space_app

    folder = str(emzoo.save_pretrained(emzoo.create_model("emzoo_unet_2_44"), tmp_path / "m", task="denoise"))
    calls = []
    monkeypatch.setattr(space_app, "load", lambda name: calls.append(name) or emzoo.load(name))
    names, loaded = space_app.reachable_models([folder])
    cache = space_app.ModelCache(allowed=names, loaded=loaded)
    assert cache.get(folder) is loaded[folder] and calls == [folder]
