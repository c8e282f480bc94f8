"""`python -m simulator` = `csms-sim`."""

from simulator.cli import main

__all__: list[str] = []

main()
