"""`python -m simulator` = `csms-sim`."""

from simulator.cli import main

main()
