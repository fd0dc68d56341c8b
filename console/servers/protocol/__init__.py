"""The native protocol (PROTOCOL.md) once: its rules, its handlers over the queue's state, and its HTTP transport."""
