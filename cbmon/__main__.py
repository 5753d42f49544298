"""``python -m cbmon`` runs the ``cbmon`` command."""

from cbmon.cli import main

main()
