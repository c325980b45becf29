# shellcheck shell=bash
# Sourced by the bench scripts (bench.sh, media-bench.sh, cluster-bench.sh): their progress line
# and their fatal error. What it does not do: run anything by itself.

# A step's heading, with the time and the load average (the machine is shared: the reader of a
# figure should see how busy it was).
say() { printf '\n==> %s (%s, load %s)\n' "$*" "$(date +%H:%M:%S)" "$(cut -d' ' -f1-3 /proc/loadavg)"; }

# Stops the script with a message naming it.
die() { echo "$(basename "$0" .sh): $*" >&2; exit 1; }
