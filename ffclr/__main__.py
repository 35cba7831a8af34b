import sys

from ffclr.cli import main

sys.exit(main())
