"""Records and the local SQLite database. Imports no UI and no network code."""
