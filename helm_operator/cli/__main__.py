"""`python -m helm_operator.cli`: the same as the `helm-operator` command."""

import sys

from helm_operator.cli import main

sys.exit(main())
