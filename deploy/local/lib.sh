# shellcheck shell=bash
# Shared helpers for deploy/local/{infra-up,infra-down,status}. Source, do not run.

# Paths and ports below are used by the scripts that source this file.
# shellcheck disable=SC2034
LOCAL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$LOCAL_DIR/../.." && pwd)"
STATE_DIR="${ALM_LOCAL_DIR:-$REPO_DIR/.alm-local}"
# The jar cache may be shared between several state directories (a private fault-test cluster
# reusing the main one's jars): ALM_JARS_DIR.
JARS_DIR="${ALM_JARS_DIR:-$STATE_DIR/jars}"
PID_DIR="$STATE_DIR/pids"
LOG_DIR="$STATE_DIR/logs"

KAFKA_PORT="${ALM_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${ALM_KAFKA_CONTROLLER_PORT:-9093}"
CASSANDRA_PORT="${ALM_CASSANDRA_PORT:-9042}"
CASSANDRA_STORAGE_PORT="${ALM_CASSANDRA_STORAGE_PORT:-7000}"
CASSANDRA_JMX_PORT="${ALM_CASSANDRA_JMX_PORT:-7199}"

log() { printf 'deploy/local: %s\n' "$*"; }
die() { printf 'deploy/local: %s\n' "$*" >&2; exit 1; }

# Milliseconds since the epoch, and "S.s" seconds elapsed since a given value.
now_ms() { date +%s%3N; }
since() { local ms=$(($(now_ms) - $1)); printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)); }

pid_file() { printf '%s/%s.pid' "$PID_DIR" "$1"; }

# Print the pid recorded for a name, if its file holds a number.
read_pid() {
  local f pid
  f="$(pid_file "$1")"
  [[ -f $f ]] || return 1
  pid="$(tr -dc '0-9' <"$f")"
  [[ -n $pid ]] || return 1
  printf '%s' "$pid"
}

# True if pid is alive, not a zombie, and started no later than its pid file was
# written (so a pid reused by an unrelated process after a reboot is not ours).
pid_alive() {
  local pid=$1 file=$2 stat rest fields btime tck started
  stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
  rest="${stat##*) }"
  read -ra fields <<<"$rest"
  if [[ ${fields[0]} == Z ]]; then
    # A zombie leader whose other threads still run (a JVM shutting down) is still alive.
    local tasks=("/proc/$pid/task/"*)
    ((${#tasks[@]} > 1)) || return 1
  fi
  [[ -f $file ]] || return 0
  btime="$(awk '/^btime/ {print $2}' /proc/stat)"
  tck="$(getconf CLK_TCK)"
  started=$((btime + fields[19] / tck))
  ((started <= $(stat -c %Y "$file") + 1))
}

# Print the pid of a running service by name, or fail.
running_pid() {
  local pid
  pid="$(read_pid "$1")" || return 1
  pid_alive "$pid" "$(pid_file "$1")" || return 1
  printf '%s' "$pid"
}

rss_of() { awk '/^VmRSS/ {printf "%d MB", $2 / 1024}' "/proc/$1/status" 2>/dev/null || true; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# SIGTERM each named service, wait up to ALM_STOP_TIMEOUT (60 s) for all to exit,
# SIGKILL whatever is left, and remove the pid files.
stop_services() {
  local name pid now deadline t0 signal=TERM
  local -A pids=()
  t0="$(now_ms)"
  for name in "$@"; do
    if pid="$(running_pid "$name")"; then
      pids[$name]=$pid
      kill -TERM "$pid" 2>/dev/null || true
    else
      rm -f "$(pid_file "$name")"
    fi
  done
  ((${#pids[@]})) || return 0
  log "stopping ${!pids[*]} (SIGTERM)"
  deadline=$((t0 + ${ALM_STOP_TIMEOUT:-60} * 1000))
  while ((${#pids[@]})); do
    now=$(now_ms)
    for name in "${!pids[@]}"; do
      pid=${pids[$name]}
      if ! pid_alive "$pid" ""; then
        rm -f "$(pid_file "$name")"
        log "$name (pid $pid) stopped after $(since "$t0") s"
        unset "pids[$name]"
      elif ((now > deadline)) && [[ $signal == TERM ]]; then
        log "$name (pid $pid) still running after ${ALM_STOP_TIMEOUT:-60} s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
      fi
    done
    if ((now > deadline)); then
      ((now < deadline + 10000)) || die "could not stop ${!pids[*]} (pids ${pids[*]})"
      signal=KILL
    fi
    sleep 0.2
  done
}
