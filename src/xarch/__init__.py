"""xarch: daemonless multi-architecture container image builder and supply-chain tool."""

__version__ = "0.1.0"
