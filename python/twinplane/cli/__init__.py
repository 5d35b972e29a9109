"""The ``twinplane`` command line.

- :mod:`~twinplane.cli.main`: the parser and :func:`main` (the ``twinplane`` console script).
- :mod:`~twinplane.cli.runtime`: what the process commands share: log levels, logging set-up,
  the event loop, the default home.
- :mod:`~twinplane.cli.edge`: ``twinplane edge``, the device manager process.
- :mod:`~twinplane.cli.mapper`: ``twinplane mapper``, a mapper process.
- :mod:`~twinplane.cli.sim`: ``twinplane sim modbus``, the Modbus device simulator.
- :mod:`~twinplane.cli.up`: ``twinplane up``, the embedded default.
- :mod:`~twinplane.cli.client`: the REST client of the kubectl-like commands (stdlib ``urllib``).
- :mod:`~twinplane.cli.commands`: ``apply``, ``get``, ``describe``, ``delete``, ``twin get|set``.
- :mod:`~twinplane.cli.output`: tables, JSON and YAML, times.
- :mod:`~twinplane.cli.bench`: ``twinplane bench scale`` (the load test).
- :mod:`~twinplane.cli.baseline`: ``twinplane bench imitation-mapper``, the load test's
  baseline mapper (a Python imitation of mapper-framework's design).
- :mod:`~twinplane.cli.args`: argument types the parsers share.
"""

from twinplane.cli.main import main

__all__ = ["main"]
