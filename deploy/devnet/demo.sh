#!/usr/bin/env bash
# The keeper at work: real Aave V3 + Morpho Blue on a devnet mining a block a second, 1,000
# borrowers each, the keeper running live, a 25 % WETH crash, and what it liquidated.
set -euo pipefail
port="${1:-8545}"
rpc="http://127.0.0.1:${port}"
work="$(mktemp -d)"
config="config/devnet.toml"
live_config="$work/keeper.toml"
log="$work/keeper.log"

keeper devnet up --port "$port" --aave-borrowers 1000 --morpho-borrowers 1000 --block-time 1 \
  --config-out "$config" --detach > "$work/up.json"
keeper_pid=""
cleanup() {
  [ -n "$keeper_pid" ] && kill -TERM "$keeper_pid" 2>/dev/null && wait "$keeper_pid" 2>/dev/null || true
  keeper devnet down --port "$port"
  rm -rf "$work"
}
trap cleanup EXIT

echo
echo "== devnet up: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["ready_s"], "s, block", d["block"])' "$work/up.json")"
keeper devnet inspect --config "$config"

# The devnet's keeper is Anvil's public dev account #1 (a well-known key: never use it elsewhere).
export KEEPER_PRIVATE_KEY=0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
sed -e 's/^mode = "dry-run"/mode = "live"/' -e "s|^path = .*|path = \"$work/store.sqlite\"|" "$config" > "$live_config"
keeper run --config "$live_config" 2> "$log" &
keeper_pid=$!
until grep -q '"keeper_ready"' "$log"; do
  kill -0 "$keeper_pid" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.2
done
echo
echo "== keeper running live (logs: JSON lines); WETH crashes 25 % with one real feed transaction"
keeper devnet price --rpc "$rpc" --asset WETH --move -25
sleep 6
kill -TERM "$keeper_pid"
wait "$keeper_pid" || true
keeper_pid=""

echo
echo "== what the keeper did"
python3 - "$log" <<'PY'
import collections, json, sys
events = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
mined = [e for e in events if e["event"] == "liquidation_mined" and e.get("note") is None]
reverted = [e for e in events if e["event"] == "liquidation_reverted"]
handled = [e for e in events if e["event"] == "block_handled" and e["opportunities"]]
stopped = next(e for e in events if e["event"] == "keeper_stopped")
print(f"liquidations mined: {len(mined)} {dict(collections.Counter(e['protocol'] for e in mined))}, reverted: {len(reverted)}")
if handled:
    first = handled[0]
    print(f"first reaction: block {first['block']}, {first['opportunities']} opportunities, "
          f"{first['execute_ms']:.0f} ms from quotes to broadcast (simulation {first.get('simulate_ms', 0):.0f} ms)")
print(f"expected net profit: {int(stopped.get('expected_net_profit_wei', 0)) / 1e18:.3f} WETH-equivalent, "
      f"gas paid: {int(stopped.get('gas_paid_wei', 0)) / 1e18:.4f} ETH")
PY
echo
keeper devnet inspect --config "$config"
