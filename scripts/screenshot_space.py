"""Screenshot the Space in a real headless Chromium, serving the shipped models (and any folders
given), with one model run on a bundled example: docs/space.png.

.venv/bin/python scripts/screenshot_space.py [MODEL ...] [--select NAME] [--example NAME] [--out docs/space.png]
"""

import argparse
import os
import socket
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from playwright.sync_api import sync_playwright  # noqa: E402

from emzoo.space.app import CHROMIUM, CHROMIUM_ARGS, EXAMPLES_DIR, build_demo  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="folders or hub ids besides the shipped models")
    parser.add_argument("--select", default="unet-4-424-emsim-denoise", help="the model to run")
    parser.add_argument("--example", default="hrtem_au_nanoparticles.tif")
    parser.add_argument("--out", type=Path, default=Path("docs/space.png"))
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = build_demo(args.models, default=args.select)
    demo.launch(prevent_thread_lock=True, server_port=port, quiet=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(demo.local_url)
        page.wait_for_selector("#run-button", timeout=60_000)
        page.set_input_files("input[type=file]", str(EXAMPLES_DIR / args.example))
        page.wait_for_timeout(1500)
        page.click("#run-button")
        page.wait_for_selector("#result-overlay img, #result-slider img", timeout=120_000)
        page.wait_for_timeout(1500)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out), full_page=True)
        print(args.out, page.inner_text("#summary"))
        browser.close()
    demo.close()


if __name__ == "__main__":
    main()
