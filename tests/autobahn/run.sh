#!/usr/bin/env bash
# Autobahn|Testsuite conformance: runs the fuzzingclient cases 1-7, 9 and 10 against
# `websocketd --framing=length-prefixed cat` (a perfect echo) and fails on any case that is
# not OK, NON-STRICT or INFORMATIONAL. (Cases 12 and 13, compression, do not apply.)
#
# The suite is Python 2.7 only: it runs in a Debian 11 chroot made with debootstrap from
# Debian's registry and kept for later runs (AUTOBAHN_ROOT, default /opt/websocketd-autobahn).
# Needs root. Setup takes a few minutes the first time; the cases take about 20 seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=${AUTOBAHN_ROOT:-/opt/websocketd-autobahn}

if [ "$(id -u)" != 0 ]; then
  echo "autobahn: needs root (debootstrap, chroot)" >&2
  exit 1
fi

setup() {
  command -v debootstrap >/dev/null || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  }
  rm -rf "$root"
  debootstrap --variant=minbase --include=python2.7,python-pip-whl,ca-certificates \
    bullseye "$root" http://deb.debian.org/debian >/dev/null
  # The chroot uses this machine's name resolution and certificate authorities.
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  mount -t proc proc "$root/proc"
  trap 'umount "$root/proc" 2>/dev/null || true' RETURN
  chroot "$root" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python-setuptools python2.7-dev gcc libffi-dev libssl-dev' >/dev/null 2>&1
  local pip_whl
  pip_whl=$(cd "$root" && ls usr/share/python-wheels/pip-*.whl | head -n 1)
  chroot "$root" env -u PIP_FIND_LINKS python2.7 "/$pip_whl/pip" install -q --no-cache-dir 'pip==20.3.4' 'wheel<0.38' 2>/dev/null
  chroot "$root" env -u PIP_FIND_LINKS python2.7 -m pip install -q --no-cache-dir 'autobahntestsuite==25.10.1' 2>/dev/null
}

if ! chroot "$root" sh -c 'command -v wstest' >/dev/null 2>&1; then
  echo "autobahn: setting up Debian 11 with autobahntestsuite in $root"
  setup
fi

cargo build --release --locked -p websocketd --quiet
log=$(mktemp)
./target/release/websocketd --address=127.0.0.1 --port=0 --maxframesize=20000000 \
  --framing=length-prefixed cat >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$log"' EXIT
port=""
for _ in $(seq 1 200); do
  port=$(sed -n 's|.*Starting WebSocket server *: ws://127.0.0.1:\([0-9]*\)/.*|\1|p' "$log")
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || { echo "autobahn: server did not start" >&2; cat "$log" >&2; exit 1; }

work="$root/websocketd-run"
rm -rf "$work"
mkdir -p "$work"
cat >"$work/spec.json" <<JSON
{
  "outdir": "/websocketd-run/reports",
  "servers": [{"agent": "websocketd", "url": "ws://127.0.0.1:$port"}],
  "cases": ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"],
  "exclude-cases": [],
  "exclude-agent-cases": {}
}
JSON
start=$(date +%s)
chroot "$root" sh -c 'cd /websocketd-run && wstest -m fuzzingclient -s spec.json' >"$work/wstest.log" 2>&1
echo "autobahn: cases ran in $(( $(date +%s) - start )) s; report in $work/reports/index.html"

python3 - "$work/reports/index.json" <<'PY'
import collections, json, sys
index = json.load(open(sys.argv[1]))
counts, failed = collections.Counter(), []
for cases in index.values():
    for case, result in cases.items():
        counts[result["behavior"]] += 1
        ok = result["behavior"] in ("OK", "NON-STRICT", "INFORMATIONAL") \
            and result["behaviorClose"] in ("OK", "INFORMATIONAL")
        if not ok:
            failed.append((case, result["behavior"], result["behaviorClose"]))
print("autobahn: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
for case, behavior, close in sorted(failed):
    print(f"autobahn: FAILED case {case}: {behavior}, close {close}")
print(f"autobahn: {sum(counts.values()) - len(failed)} passed, {len(failed)} failed")
sys.exit(1 if failed or not counts else 0)
PY
