"""`python -m clrelu`: the `clrelu` command."""

import sys

from clrelu.cli import main

sys.exit(main())
