"""The device link: the frame protocol, transports, the device client and the host simulator."""
