"""pydnn2: a builder-API neural-network trainer on PyTorch, in the spirit of pydnn."""

__version__ = '0.1.0'
