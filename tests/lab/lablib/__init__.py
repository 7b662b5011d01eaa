"""The cutpilot test lab: real sshd hosts and services on 127.0.0.1, started and stopped by `tests/lab/lab`."""
