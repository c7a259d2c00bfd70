#!/usr/bin/env bash
# Install Debian packages for the project's scripts and tests: `scripts/apt_install.sh PKG...`
# (root). Why one script: the test suite runs on several workers, and two fixtures installing at
# once (the SLURM test cluster's daemons, the web UI tests' browser) failed on apt's locks. Here
# they take turns on one lock file, and wait for any other apt (up to 10 minutes) rather than
# fail: `apt-get update` retries while another apt holds its lists lock (its own lock timeout
# does not cover that lock), `apt-get install` waits on the dpkg lock.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: scripts/apt_install.sh PACKAGE..." >&2; exit 2; }
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "apt_install.sh: needs root and apt-get to install $*" >&2
  exit 1
fi
exec 9>/var/lock/audiotools-apt.lock
flock 9
wait_for_locks=(-o DPkg::Lock::Timeout=600)
for attempt in $(seq 60); do
  apt-get "${wait_for_locks[@]}" update -qq && break
  [ "$attempt" -lt 60 ] || { echo "apt_install.sh: apt-get update kept failing" >&2; exit 1; }
  sleep 10
done
DEBIAN_FRONTEND=noninteractive apt-get "${wait_for_locks[@]}" install -y -qq "$@" >/dev/null
