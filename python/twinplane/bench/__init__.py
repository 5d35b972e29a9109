"""Load scenarios run against real processes: ``twinplane bench scale`` and its baselines.

:mod:`twinplane.bench.scale` starts a Modbus simulator, the device manager and a mapper as three
processes, onboards N devices, measures them for a while and writes the results;
:mod:`twinplane.bench.prom` reads the Prometheus text they export, :mod:`twinplane.bench.procs`
runs and watches the processes, :mod:`twinplane.bench.report` and :mod:`twinplane.bench.plots`
turn the measurements into tables, JSON and PNG plots.
"""
