#!/usr/bin/env python3
"""memsample.py OUT STOPFILE -- every 0.2 s, write "epoch pid rss_anon_kB
vm_hwm_kB name" for each process whose command line contains "pgclone job",
until STOPFILE exists. One process reading /proc, so the sampling costs
little of the CPU the clone is measured on."""
import os
import sys
import time

out, stop = sys.argv[1], sys.argv[2]
with open(out, "w") as f:
    while not os.path.exists(stop):
        now = time.time()
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as c:
                    cmd = c.read().replace(b"\0", b" ").decode(errors="replace").strip()
                if "pgclone job" not in cmd:
                    continue
                fields = {}
                with open(f"/proc/{pid}/status") as s:
                    for line in s:
                        k, _, v = line.partition(":")
                        fields[k] = v.split()[0] if v.split() else "0"
                f.write(f"{now:.2f} {pid} {fields.get('RssAnon', 0)} {fields.get('VmHWM', 0)} {cmd.replace(' ', '_')}\n")
            except OSError:
                continue
        f.flush()
        time.sleep(0.2)
