"""The chaos suite: a deployment on loopback under load, one role killed at a time."""
