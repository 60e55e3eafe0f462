"""``python -m optimizer.runtime ...`` runs the odc-run runner."""

from optimizer.runtime.runner import main

main()
