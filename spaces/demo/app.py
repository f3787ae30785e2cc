"""The emzoo Hugging Face Space: every reachable emzoo model in the browser.

Locally: `emzoo demo [--models FOLDER ...]`. `emzoo publish-space` uploads this app with the
emzoo package vendored and the Space's model list filled in.
"""

import os

from emzoo.space.app import build_demo, launch

demo = build_demo([m for m in os.environ.get("EMZOO_DEMO_MODELS", "").split(",") if m])

if __name__ == "__main__":
    launch(demo)
