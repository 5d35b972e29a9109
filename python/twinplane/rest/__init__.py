"""What every twinplane REST server shares: the request guard and bounded error answers.

The device manager's API (:mod:`twinplane.edge.rest`) and a mapper's data API
(:mod:`twinplane.mapper.rest`) are separate processes; they share these modules, never each
other's.

- :mod:`~twinplane.rest.guard`: which requests a server takes at all (DNS-rebinding and
  cross-site request forgery protection: ``Host``, ``Origin``, how a write says who sends it).
- :mod:`~twinplane.rest.echo`: how much of an input an error answer repeats, and error bodies
  that always encode.
"""
