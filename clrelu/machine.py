"""What this machine has: its cores and its memory, for the checks that bound a config by them."""

from __future__ import annotations

import os


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def memory() -> tuple[int, int]:
    """(total, available) memory in bytes: /proc/meminfo where there is one, else what sysconf says."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            fields = dict(line.split(":", 1) for line in handle if ":" in line)
        total, available = (int(fields[key].split()[0]) * 1024 for key in ("MemTotal", "MemAvailable"))
        return total, available
    except (OSError, KeyError, ValueError):
        page = os.sysconf("SC_PAGE_SIZE")
        return os.sysconf("SC_PHYS_PAGES") * page, os.sysconf("SC_AVPHYS_PAGES") * page


def size_text(n: float) -> str:
    """A number of bytes as people read it: 512 B, 3.2 MiB, 1.0 TiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def memory_text() -> str:
    """What the machine has, in words: '23.5 GiB of memory (21.4 GiB available now)'."""
    total, available = memory()
    return f"{size_text(total)} of memory ({size_text(available)} available now)"
