import sys

from pyao.cli import main

sys.exit(main())
