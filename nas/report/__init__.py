"""`nas report`: figures and a Markdown summary of a search (see `nas.report.command`)."""

from nas.report.command import report_command, write_report

__all__ = ["report_command", "write_report"]
