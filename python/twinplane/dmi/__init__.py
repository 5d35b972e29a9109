"""KubeEdge's Device Management Interface (DMI) v1beta1: the gRPC contract twinplane speaks.

The device manager serves ``v1beta1.DeviceManagerService`` to mappers; a mapper serves
``v1beta1.DeviceMapperService`` to the device manager. Both are the same wire contract as
KubeEdge's EdgeCore and Go mapper-framework, so either side can be KubeEdge's.

- :mod:`twinplane.dmi.v1beta1`: the messages and service stubs generated from
  ``proto/dmi/v1beta1/api.proto`` (``make proto``);
- :mod:`twinplane.dmi.anyvalue`: the ``configData`` codec (scalars packed in ``google.protobuf.Any``
  the way EdgeCore does it);
- :mod:`twinplane.dmi.reflection`: gRPC server reflection, served like KubeEdge's servers do.
- :mod:`twinplane.dmi.wire`: decoding a request, naming the field and byte offset of a bad one.
"""
