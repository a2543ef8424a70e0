"""How the client reaches a server: the HTTP client, the wire format, shared memory for
large buffers on one machine, owner tokens and self-signed certificates."""
