"""The team's existing tool functions: plain Python, no MCP in sight.

`team_tools_server.py` serves them over MCP so bridge's agents (and any MCP client) can call
them; the docstrings and type hints become the tools' descriptions and input schemas.
"""
import math
import re


def estimate_reading_time(text: str, words_per_minute: int = 230) -> str:
    """Estimates how long a text takes to read, e.g. '3 min (612 words)'."""
    words = len(re.findall(r"\w+", text))
    minutes = max(1, math.ceil(words / max(1, words_per_minute)))
    return f"{minutes} min ({words} words)"


def format_citation(title: str, url: str, publisher: str = "") -> str:
    """Formats a source as a one-line citation for a research report."""
    title = " ".join(title.split()) or "Untitled"
    who = f" ({publisher.strip()})" if publisher.strip() else ""
    return f"{title}{who}. <{url.strip()}>"
