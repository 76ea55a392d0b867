"""The sans-I/O DDP core: text frames in, events and frames out.

Nothing in this package imports ``asyncio`` or ``websockets`` (``tests/test_layering.py`` checks).
"""
