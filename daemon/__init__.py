"""renderflow.daemon: the farm CLI (rf-render) now; the ZeroMQ daemon and its client to come."""
