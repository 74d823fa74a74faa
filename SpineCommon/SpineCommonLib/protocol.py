"""The engine's answers read without Slicer, so that they can be tested with pytest
(Testing/test_slicer_spinecommon_helpers.py); SpineCommonLib.jobs runs the process.

The contract with the engine (`spine_analysis.jobs`): each request is answered by JSON lines on stdout: zero or
more {"status": "progress", "fraction": 0.5, "message": "..."}, then exactly one final line, either
{"status": "done", ...result fields...} or {"status": "error", "message": "...", "code": optional short code}.
Every other output line (warnings, library noise) is only logged.
"""
import json


class JobCancelled(RuntimeError):
    """The user cancelled the job."""


class JobFailed(RuntimeError):
    """The engine answered with an error, or its process ended without answering.

    `code` is the engine's short code of the error (e.g. "not_spine"), or None: it lets a module answer some
    errors in its own way."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


def parseMessage(line):
    """The engine message on an output line (a dict with a "status"), or None for any other line."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        message = json.loads(text)
    except ValueError:
        return None
    return message if isinstance(message, dict) and isinstance(message.get("status"), str) else None


def progressOf(message):
    """(fraction 0..1 or None, text) of a progress message."""
    fraction = message.get("fraction")
    fraction = float(fraction) if isinstance(fraction, (int, float)) and not isinstance(fraction, bool) else None
    return fraction, str(message.get("message") or "")


def resultOf(message):
    """The result of a done message: its fields without "status"."""
    return {key: value for key, value in message.items() if key != "status"}


def failureOf(message):
    """The JobFailed of an error message, with the engine's text and code."""
    code = message.get("code")
    return JobFailed(str(message.get("message") or "The engine reported an error."),
                     code=code if isinstance(code, str) and code else None)
