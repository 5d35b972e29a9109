"""The baselines ``twinplane bench scale`` can run beside twinplane, named for what they are.

Every report that shows a baseline's figures (the terminal table, ``results.md``,
``results.json``, the plots) takes its name, label and description from here, so none of them
can call it something it is not. Importing this module loads nothing else (the CLI reads it to
build its parser).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["BASELINES", "IMITATION", "Baseline"]


@dataclass(frozen=True, slots=True)
class Baseline:
    """A mapper the load test can measure with the same load, in a phase of its own.

    Attributes:
        name: The ``--baseline`` value and ``results.json``'s ``baseline_name``.
        label: Its column in the tables and its name in the plots' legends.
        description: What it is, in a phrase (``results.json``'s ``baseline_description``,
            the heading of the ratios in ``results.md``).
        command: The ``twinplane`` subcommand that runs it as a process.
    """

    name: str
    label: str
    description: str
    command: tuple[str, ...]


IMITATION: Final = Baseline(
    name="mapper-framework-imitation",
    label="Python imitation of mapper-framework",
    description=(
        "a Python imitation of mapper-framework's design (per-property tickers, one unary "
        "report per property), against twinplane's device manager"
    ),
    command=("bench", "imitation-mapper"),
)
"""twinplane's own Python re-implementation of KubeEdge mapper-framework's design
(:mod:`twinplane.loadtest.imitation`); not KubeEdge's code, and not Go."""

BASELINES: Final = {b.name: b for b in (IMITATION,)}
"""The baselines by ``--baseline`` name."""
