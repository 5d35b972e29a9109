"""The shipped load test: ``twinplane bench scale`` against real processes, and its baseline.

Not the developer micro-benchmarks (the repository's root ``bench/`` folder): this package is
installed with twinplane and drives whole processes from outside.

- :mod:`~twinplane.loadtest.scale`: starts a Modbus simulator, the device manager and a mapper as
  three processes, onboards N devices, measures them for a while and writes the results;
- :mod:`~twinplane.loadtest.procs`: runs and watches the processes (CPU, memory);
- :mod:`~twinplane.loadtest.prom`: reads the Prometheus text they export;
- :mod:`~twinplane.loadtest.window`: the measured window's figures (polls on time, latency,
  throughput);
- :mod:`~twinplane.loadtest.report`, :mod:`~twinplane.loadtest.plots`,
  :mod:`~twinplane.loadtest.progress`: tables, JSON, PNG plots and progress lines;
- :mod:`~twinplane.loadtest.baselines`: what each baseline is called and is;
- :mod:`~twinplane.loadtest.imitation`: the baseline mapper, a Python imitation of
  mapper-framework's design (per-property tickers, one unary report per property), against
  twinplane's device manager (a process of its own, ``twinplane bench imitation-mapper``).
"""
