"""The networks themselves: the spec table, the layers and the pure graph builder (no I/O, no weights)."""
