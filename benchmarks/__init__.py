"""tango-async benchmarks: ``python -m benchmarks`` (``--quick`` for a smoke run).

Every figure is measured side by side in one run on one machine; nothing here asserts
a timing. See benchmarks/README.md for the latest table.
"""
