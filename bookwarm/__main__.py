import sys

from bookwarm.cli.main import main

sys.exit(main())
