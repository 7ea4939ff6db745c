"""`python -m dfad` (and `torchrun -m dfad`) is the `dfad` command."""
import sys

from .cli import main

sys.exit(main())
