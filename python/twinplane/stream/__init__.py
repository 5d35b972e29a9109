"""twinplane's fast path between mapper and device manager (``twinplane.v1.TwinStream``).

The service is defined in ``proto/twinplane/v1/stream.proto``; :mod:`twinplane.stream.v1` holds
its generated Python. The device manager serves it (:mod:`twinplane.edge.twin_stream`), the
mapper's reporter uses it when the device manager offers it (:mod:`twinplane.mapper.fast_path`).
"""
