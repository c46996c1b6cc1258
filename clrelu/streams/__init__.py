"""Task streams: each module builds one kind of stream as in-memory tensors."""
