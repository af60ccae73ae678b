"""Process memory readings for the benchmark (Linux /proc first, `resource` as the fallback).

No third-party imports: the parent process uses this too, before and without any framework.
"""

import os
import resource
import sys

GIB = 1024**3
MIB = 1024**2


def _status_field(field, pid="self"):
    """A `kB` field of /proc/<pid>/status in bytes, or None where unavailable."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def current_rss(pid="self"):
    """Resident set size in bytes (None if unknown)."""
    return _status_field("VmRSS", pid)


def peak_rss():
    """Peak resident set size of this process in bytes: VmHWM, else getrusage's ru_maxrss."""
    peak = _status_field("VmHWM")
    if peak is not None:
        return peak
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024  # bytes on macOS, KiB on Linux


def reset_peak_rss():
    """Resets VmHWM to the current RSS (Linux >= 4.0: write 5 to /proc/self/clear_refs).

    Returns True when it worked; then the next `peak_rss()` covers only what ran after the reset.
    """
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def available_memory():
    """MemAvailable of the machine in bytes (None if unknown)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def total_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
