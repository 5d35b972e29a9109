"""The baselines ``twinplane bench scale`` can run beside twinplane, named for what they are.

Every report that shows a baseline's figures (the terminal table, ``results.md``,
``results.json``, the plots) takes its name, label and description from here, so none of them
can call it something it is not. Importing this module loads nothing else (the CLI reads it to
build its parser).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["BASELINES", "IMITATION", "MAPPER_FRAMEWORK", "Baseline"]


@dataclass(frozen=True, slots=True)
class Baseline:
    """A mapper the load test can measure with the same load, in a phase of its own.

    Attributes:
        name: The ``--baseline`` value and ``results.json``'s ``baseline_name``.
        label: Its column in the tables and its name in the plots' legends.
        description: What it is, in a phrase (``results.json``'s ``baseline_description``,
            the heading of the ratios in ``results.md``).
        command: The ``twinplane`` subcommand that runs it as a process (empty with
            ``program``).
        program: The interop/go program that runs it (``tools/interop/build.sh`` builds it),
            instead of a ``twinplane`` subcommand; it reads a mapper-framework config file and
            serves its counters at ``--metrics-addr``.
        provenance: Whose code it is, in a sentence the reports print beside its figures.
    """

    name: str
    label: str
    description: str
    command: tuple[str, ...] = ()
    program: str | None = None
    provenance: str = ""


IMITATION: Final = Baseline(
    name="mapper-framework-imitation",
    label="Python imitation of mapper-framework",
    description=(
        "a Python imitation of mapper-framework's design (per-property tickers, one unary "
        "report per property), against twinplane's device manager"
    ),
    command=("bench", "imitation-mapper"),
    provenance=(
        "twinplane's own re-implementation of that design in Python, not KubeEdge's own code"
    ),
)
"""twinplane's own Python re-implementation of KubeEdge mapper-framework's design
(:mod:`twinplane.loadtest.imitation`); not KubeEdge's code, and not Go. Kept as an ablation: it
runs that design with twinplane's parts, so against :data:`MAPPER_FRAMEWORK` it separates the
design from the language and libraries."""

MAPPER_FRAMEWORK: Final = Baseline(
    name="mapper-framework",
    label="KubeEdge mapper-framework (Go)",
    description=(
        "KubeEdge's mapper-framework v1.23.0 in Go (its grpcclient, grpcserver and httpserver) "
        "with a Modbus device loop as its template's, against twinplane's device manager"
    ),
    program="mapper-framework-modbus",
    provenance=(
        "KubeEdge's own mapper-framework packages in Go (registration, reporting, "
        "DeviceMapperService, REST); its device loop and Modbus driver are written in "
        "interop/go after mapper-framework's template (docs/kubeedge.md)"
    ),
)
"""A mapper built from KubeEdge's own mapper-framework packages (interop/go,
``docs/kubeedge.md``): the incumbent's code, and the headline baseline."""

BASELINES: Final = {b.name: b for b in (MAPPER_FRAMEWORK, IMITATION)}
"""The baselines by ``--baseline`` name."""
