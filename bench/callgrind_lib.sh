# bench/callgrind_lib.sh: what bench/instructions.sh and bench/waf_instructions.sh share (sourced, not run).
# The sourcing script sets BENCH_NAME (log prefix), DURATION (seconds per measured run) and KEEP_TMP, and WORK
# once its work directory exists; it appends the processes it starts to `pids`.

log() { printf '[%s %s] %s\n' "$BENCH_NAME" "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# apt_install PACKAGE... : installs them (with sudo unless root).
apt_install() {
  (($#)) || return 0
  log "installing $* with apt-get"
  local sudo=()
  (($(id -u) == 0)) || sudo=(sudo)
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y "$@" >&2
}

# Stops what was started and removes WORK (unless KEEP_TMP=1); installed with `trap cleanup EXIT`.
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ -n ${WORK:-} ]] || return 0
  if [[ $KEEP_TMP == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}

# callgrind_run PID DUMP_PREFIX WRK_ARGS... : prints "REQUESTS INSTRUCTIONS" of one measured wrk run against a
# process running under callgrind with --callgrind-out-file=DUMP_PREFIX.%p. A 3-second warm-up, then the
# counters are zeroed, the run made and the counters dumped. Fails if nothing was measured or a request timed
# out (valgrind's slowdown: use fewer connections).
callgrind_run() {
  local pid=$1 prefix=$2 out n before dump ir
  shift 2
  wrk -t1 -d3 "$@" >/dev/null
  callgrind_control -z "$pid" >/dev/null 2>&1
  out=$(wrk -t1 -d"$DURATION" "$@")
  n=$(sed -n 's/^ *\([0-9][0-9]*\) requests in .*/\1/p' <<<"$out")
  if grep -q 'Socket errors:.*timeout [1-9]' <<<"$out"; then log "requests timed out under valgrind"; return 1; fi
  dumps() {
    local f c=0
    for f in "$prefix".*.*; do [[ -e $f ]] && c=$((c + 1)); done
    echo "$c"
  }
  before=$(dumps)
  callgrind_control -d "$pid" >/dev/null 2>&1
  for _ in $(seq 100); do (($(dumps) > before)) && break; sleep 0.1; done
  dump=$(ls -t "$prefix".*.* | head -1)
  ir=$(sed -n 's/^\(summary\|totals\): *\([0-9]*\).*/\2/p' "$dump" | head -1)
  [[ -n $n && $n -gt 0 && -n $ir ]] || return 1
  echo "$n $ir"
}
