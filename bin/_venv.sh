# Sourced by bin/alm and bin/test: make .venv and install the project if missing or stale.
ensure_venv() {
  local extra="${1:-}" root stamp want
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  stamp="$root/.venv/.alm-installed${extra:+-$extra}"
  want="$(cat "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)"
  if [ -x "$root/.venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  command -v python3 >/dev/null || { echo "ALM needs python3 (3.11+); install it first" >&2; return 1; }
  [ -x "$root/.venv/bin/python" ] || python3 -m venv "$root/.venv"
  echo "installing ALM into $root/.venv ..." >&2
  "$root/.venv/bin/pip" install -q --disable-pip-version-check -e "$root${extra:+[$extra]}" >&2
  echo "$want" > "$stamp"
}
