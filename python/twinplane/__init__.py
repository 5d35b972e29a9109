"""twinplane: an edge device-management data plane in the design of KubeEdge's DMI.

Physical devices become digital twins and cloud-native device services. The hot path (decoding
device frames, sampling, diffing twins, encoding changes) runs in a Rust engine, exposed through
:mod:`twinplane.twin`; Python orchestrates I/O and lifecycles with asyncio.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"  # keep in step with pyproject.toml [project].version
