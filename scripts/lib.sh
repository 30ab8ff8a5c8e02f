# Shared helpers for scripts/test and scripts/demo. Sourced, not run.

# Installs what the project needs on a fresh machine and nothing else.
ensure_tools() {
  local need=()
  python3 -c 'import moto, flask, flask_cors' 2>/dev/null || need+=('moto[server]')
  command -v cfn-lint >/dev/null 2>&1 || need+=(cfn-lint)
  if [ "${1:-}" = "with-cargo-lambda" ] && ! command -v cargo-lambda >/dev/null 2>&1; then
    need+=(cargo-lambda)
  fi
  if [ ${#need[@]} -gt 0 ]; then
    echo "==> installing ${need[*]} (pip)"
    python3 -m pip install --quiet --disable-pip-version-check "${need[@]}"
  fi
  if command -v rustup >/dev/null 2>&1; then
    rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
    rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
  fi
}

# Debian's Chromium and ChromeDriver, for the browser test of the managed links' page.
ensure_browser() {
  if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
    echo "==> installing chromium and chromium-driver (apt-get)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium chromium-driver >/dev/null
  fi
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Waits until 127.0.0.1:$1 accepts connections (at most $2 seconds, default 60).
wait_port() {
  local port=$1 limit=${2:-60} i=0
  until python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.5); sys.exit(s.connect_ex(('127.0.0.1',$port)))" 2>/dev/null; do
    i=$((i + 1))
    if [ "$i" -gt $((limit * 4)) ]; then
      echo "timed out waiting for port $port" >&2
      return 1
    fi
    sleep 0.25
  done
}

# Starts moto_server on a free port; sets MOTO_PID and MOTO_URL.
start_moto() {
  local port
  port=$(free_port)
  moto_server -H 127.0.0.1 -p "$port" >"${1:-/dev/null}" 2>&1 &
  MOTO_PID=$!
  MOTO_URL="http://127.0.0.1:$port"
  wait_port "$port" 60
}
