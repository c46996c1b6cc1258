"""Datasets on disk: the IDX reader, the downloader and the known datasets."""
