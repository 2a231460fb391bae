"""Command-line entry points: one thin module per command.

Each module parses its arguments, calls the services, prints, and returns
an exit status.  ``_common.run`` is the only place that turns exceptions
into messages and exit statuses, through the command's ``ExitTable``.
"""
