"""Memtrail: catch fileless attacks in containers at the kernel level."""

__version__ = "0.1.0"
