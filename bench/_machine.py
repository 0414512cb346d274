"""Facts about the machine a benchmark ran on (see nas._machine)."""

from nas._machine import machine

__all__ = ["machine"]
