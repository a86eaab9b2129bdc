import sys

from opifex.bench.cli import main

sys.exit(main())
