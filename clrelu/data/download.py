"""Fetch a file from a list of mirrors, check its md5 and move it into place atomically."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

CHUNK = 1 << 20


class DownloadFailed(Exception):
    """No mirror delivered the file with the expected md5; the message says what each tried gave."""


def download(urls: list[str], destination: Path, md5: str, timeout: float = 30.0) -> None:
    """Write the first mirror copy whose md5 matches to `destination`, via a temporary name."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.{os.getpid()}.part")
    problems = []
    for url in urls:
        try:
            digest = hashlib.md5(usedforsecurity=False)
            with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
                while chunk := response.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != md5:
                problems.append(f"{url}: md5 {digest.hexdigest()} is not the official {md5}")
                continue
            os.replace(partial, destination)
            return
        except OSError as exc:
            problems.append(f"{url}: {getattr(exc, 'reason', exc)}")
        finally:
            partial.unlink(missing_ok=True)
    raise DownloadFailed("; ".join(problems))
