import sys

from emzoo.cli import main

sys.exit(main())
