"""The application shell: the `phg` command (check, build, verify, keys, train) and `phg train`'s
loop over a data file.  It reads the pipeline through phg's API; nothing in the pipeline imports it."""
