"""The ``twinplane`` command line.

- :mod:`~twinplane.cli.main`: the parser and :func:`main` (the ``twinplane`` console script).
- :mod:`~twinplane.cli.edge`: ``twinplane edge``, the device manager process.
- :mod:`~twinplane.cli.sim`: ``twinplane sim modbus``, the Modbus device simulator.
- :mod:`~twinplane.cli.client`: the REST client of the kubectl-like commands (stdlib ``urllib``).
- :mod:`~twinplane.cli.commands`: ``apply``, ``get``, ``describe``, ``delete``, ``twin get|set``.
- :mod:`~twinplane.cli.output`: tables, JSON and YAML, times.
"""

from twinplane.cli.main import main

__all__ = ["main"]
