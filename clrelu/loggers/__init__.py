"""Experiment trackers a run reports to beside its CSV files (config group `logger`): one file each."""
