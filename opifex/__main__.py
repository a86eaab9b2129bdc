import sys

from opifex.cli import main

sys.exit(main())
