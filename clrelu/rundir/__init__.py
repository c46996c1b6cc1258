"""The run folder's only door: what a folder holds, its guard and lock, every read and write (CSV, checkpoint)."""
