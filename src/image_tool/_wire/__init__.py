"""The wire: building a relay's request and reading its answer. Pure functions and readers fed
bytes; nothing here opens a connection, sleeps or touches the disk."""
