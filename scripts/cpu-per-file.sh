#!/usr/bin/env bash
# Runs each compiled test file in its own cpuacct cgroup (cgroup v1, as root) and prints its CPU seconds, wall seconds
# and exit code: every process the file starts is counted, detached ones (instances, add-on servers) included, so a
# file's cost holds even on a busy machine. Usage: [P=3] scripts/cpu-per-file.sh dist/test/x.test.js ...
# (P files at a time, 3 by default). Each file's output goes to /tmp/cpu-<hash>.log.
set -uo pipefail
cd "$(dirname "$0")/.."
root=/sys/fs/cgroup/cpuacct
if [ ! -w "$root" ]; then
  echo "cpu-per-file: needs a writable cgroup v1 cpuacct hierarchy at $root (root)" >&2
  exit 2
fi
one() {
  local file=$1 name cg t0 t1 rc file_tmpdir
  name=bt-$(echo "$file" | md5sum | cut -c1-8)
  cg=$root/$name
  mkdir -p "$cg"
  t0=$(date +%s%N)
  # TMPDIR passable by others, as the runner makes it: add-on servers run as an unprivileged user.
  # Its own TMPDIR, removed below: what the file leaves there does not pile up in /tmp.
  file_tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/berth-cpu-XXXX")
  chmod 711 "$file_tmpdir"
  bash -c "echo \$\$ > $cg/cgroup.procs; export TMPDIR=$file_tmpdir; exec node --test --test-reporter=dot $file" \
    >"/tmp/cpu-$name.log" 2>&1
  rc=$?
  t1=$(date +%s%N)
  sleep 1 # processes the file stopped at its end are gone by now
  printf '%6.1f %6.1f rc=%s %s\n' "$(awk "BEGIN{print $(cat "$cg/cpuacct.usage")/1e9}")" \
    "$(awk "BEGIN{print ($t1-$t0)/1e9}")" "$rc" "$file"
  for pid in $(cat "$cg/cgroup.procs"); do echo "  left running: $pid $(tr '\0' ' ' <"/proc/$pid/cmdline" | cut -c1-100)"; done
  rmdir "$cg" 2>/dev/null
  rm -rf "$file_tmpdir"
}
export -f one
export root
printf '%s\n' "$@" | xargs -P "${P:-3}" -I{} bash -c 'one {}'
