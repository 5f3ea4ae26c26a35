#!/usr/bin/env bash
# spa-knock demo: a real daemon, a real nftables rule, a real TCP connect, between two network namespaces that this
# script creates and removes. Nothing leaves this machine: the only addresses used live inside those namespaces.
#
#   sudo npm run demo            (needs root, nft and ip: apt-get install -y nftables iptables iproute2)
#   DEMO_BACKEND=iptables sudo npm run demo
set -euo pipefail
cd "$(dirname "$0")/.."

BACKEND=${DEMO_BACKEND:-nftables}
DURATION=${DEMO_DURATION:-5}
SRV=spak-demo-srv CLI=spak-demo-cli
SRV4=10.254.77.1 CLI4=10.254.77.2 SRV6=fd00:5ba:77::1 CLI6=fd00:5ba:77::2
UDP_PORT=62201 TCP_PORT=22

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
need() { command -v "$1" >/dev/null 2>&1 || { echo "demo: needs '$1' ($2)"; exit 1; }; }

[ "$(id -u)" = 0 ] || { echo "demo: needs root (it creates network namespaces and firewall rules): sudo npm run demo"; exit 1; }
need ip "apt-get install -y iproute2"
need node "Node.js 20 or newer"
if [ "$BACKEND" = nftables ]; then need nft "apt-get install -y nftables"; else need iptables "apt-get install -y iptables"; fi
[ -d node_modules ] || { echo "demo: run 'npm ci' first"; exit 1; }
# the source checkout's programs, run through tsx (the installed package runs dist/ instead)
KNOCK=(node --import tsx client/cli.ts)
KNOCKD=(node --import tsx server/main.ts)

WORK=$(mktemp -d /tmp/spak-demo.XXXXXX)
DAEMON_PID='' SERVICE_PID=''
cleanup() {
  [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null || true
  [ -n "$SERVICE_PID" ] && kill "$SERVICE_PID" 2>/dev/null || true
  ip netns del "$SRV" 2>/dev/null || true
  ip netns del "$CLI" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
cleanup_ns_only() { ip netns del "$SRV" 2>/dev/null || true; ip netns del "$CLI" 2>/dev/null || true; }
cleanup_ns_only

say "1. two hosts: $SRV ($SRV4, $SRV6) and $CLI ($CLI4, $CLI6), joined by a veth pair"
ip netns add "$SRV"; ip netns add "$CLI"
ip link add spak-demo-a netns "$SRV" type veth peer name spak-demo-b netns "$CLI"
ip -n "$SRV" addr add "$SRV4/24" dev spak-demo-a; ip -n "$CLI" addr add "$CLI4/24" dev spak-demo-b
ip -n "$SRV" addr add "$SRV6/64" dev spak-demo-a nodad; ip -n "$CLI" addr add "$CLI6/64" dev spak-demo-b nodad
for ns in "$SRV" "$CLI"; do ip -n "$ns" link set lo up; done
ip -n "$SRV" link set spak-demo-a up; ip -n "$CLI" link set spak-demo-b up

say "2. a key for the client (spa-knock keygen), and the daemon's config"
"${KNOCK[@]}" keygen --out "$WORK/alice.key"
cat > "$WORK/spa-knockd.toml" <<TOML
state_dir = "$WORK/state"
[listen]
port = $UDP_PORT
address = "::"
[firewall]
backend = "$BACKEND"
protect = ["tcp/$TCP_PORT"]
[grant]
duration = $DURATION
[[client]]
name = "alice"
key_file = "alice.key"
open = ["tcp/$TCP_PORT"]
TOML
sed 's/^/    /' "$WORK/spa-knockd.toml"

say "3. a TCP service on port $TCP_PORT in $SRV, and spa-knockd ($BACKEND) in front of it"
ip netns exec "$SRV" node -e '
  require("net").createServer((c) => { c.end("hello from the protected service\n"); }).listen(+process.argv[1], "::");
' "$TCP_PORT" &
SERVICE_PID=$!
ip netns exec "$SRV" "${KNOCKD[@]}" --config "$WORK/spa-knockd.toml" >"$WORK/daemon.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 1 100); do grep -q '"event":"start"' "$WORK/daemon.log" 2>/dev/null && break; sleep 0.1; done
grep -q '"event":"start"' "$WORK/daemon.log" || { echo "demo: the daemon did not start:"; cat "$WORK/daemon.log"; exit 1; }
tail -n1 "$WORK/daemon.log"

probe() { # probe HOST -> prints open/closed, exit 0 when open
  ip netns exec "$CLI" node -e '
    const t0 = process.hrtime.bigint();
    const s = require("net").connect({ host: process.argv[1], port: +process.argv[2], timeout: 1000 });
    s.on("connect", () => { console.log(`   tcp ${process.argv[1]} port ${process.argv[2]}: OPEN (connected in ${Number(process.hrtime.bigint() - t0) / 1e6} ms)`); s.destroy(); process.exit(0); });
    s.on("timeout", () => { console.log(`   tcp ${process.argv[1]} port ${process.argv[2]}: closed (no answer in 1 s)`); process.exit(1); });
    s.on("error", (e) => { console.log(`   tcp ${process.argv[1]} port ${process.argv[2]}: closed (${e.code})`); process.exit(1); });
  ' "$1" "$TCP_PORT"
}

say "4. before the knock, from $CLI"
if probe "$SRV4"; then echo "demo: FAILED: the port should be closed"; exit 1; fi

say "5. knock: spa-knock $SRV4 --key alice.key --open tcp/$TCP_PORT"
ip netns exec "$CLI" "${KNOCK[@]}" "$SRV4" --key "$WORK/alice.key" --open "tcp/$TCP_PORT"
sleep 0.2
grep '"event":"grant"' "$WORK/daemon.log" | tail -n1

say "6. after the knock"
probe "$SRV4" || { echo "demo: FAILED: the port should be open"; cat "$WORK/daemon.log"; exit 1; }
echo "   (IPv6 was not knocked for, so it is still closed:)"
if probe "$SRV6"; then echo "demo: FAILED: IPv6 should still be closed"; exit 1; fi

say "7. waiting ${DURATION}s for the grant to expire"
sleep "$((DURATION + 1))"
if probe "$SRV4"; then echo "demo: FAILED: the port should be closed again"; exit 1; fi

say "8. what the daemon logged (NDJSON, for journald)"
cat "$WORK/daemon.log"

say "demo OK: closed → one UDP packet → open → expired → closed. Cleaning up namespaces."
