"""Pure values and rules of the central system: no asyncio, no I/O, no clock reads."""
