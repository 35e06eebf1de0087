import sys

from ix2x.cli.main import main

sys.exit(main())
