"""`accelerate launch scripts/pretrain.py ...` (or `torchrun`): the same as `emzoo pretrain ...`."""

import sys

from emzoo.cli.train import script_main

if __name__ == "__main__":
    sys.exit(script_main("pretrain"))
