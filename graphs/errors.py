"""The one error type that program code raises for bad programs and bad files."""

from __future__ import annotations


class ProgramError(ValueError):
    """A program (or a program file) is malformed or invalid.

    ``where`` names the offending node, input or field (e.g. ``"nodes[3].args[1]"``
    or ``"node 'n5'"``) so that a user can find and fix it.
    """

    def __init__(self, message: str, where: str | None = None) -> None:
        self.where = where
        self.reason = message
        super().__init__(f"{where}: {message}" if where else message)
