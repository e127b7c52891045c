"""`python -m flowdesk.cli`: the `flowdesk` command without its console script."""

from flowdesk.cli import main

main()
