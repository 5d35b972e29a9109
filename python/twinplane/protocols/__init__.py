"""What each protocol's ``configData`` means: wire types shared by the device manager and drivers.

One module per protocol, pure (no I/O): the device manager checks manifests and desired values
with it where they are set, and the protocol's driver reads the same keys. A module here imports
neither the device manager nor the mapper nor the drivers.
"""
