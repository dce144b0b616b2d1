"""Retail Vision Analytics: store camera feeds to retail metrics people can trust, in real time."""

__version__ = "0.1.0"
