"""Multi-device sync: the change feed and a device's push of its offline edits."""
