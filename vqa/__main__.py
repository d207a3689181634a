"""`python -m vqa` is the `vqa` command."""

import sys

from vqa.cli import main

sys.exit(main())
