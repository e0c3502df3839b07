#!/usr/bin/env bash
# The devnet at work: real Aave V3 + Morpho Blue, 1,000 borrowers each, a 25 % WETH crash,
# and the positions it makes liquidatable, all read back from the contracts.
set -euo pipefail
port="${1:-8545}"
rpc="http://127.0.0.1:${port}"
config="config/devnet.toml"

keeper devnet up --port "$port" --aave-borrowers 1000 --morpho-borrowers 1000 \
  --config-out "$config" --detach > /tmp/keeper-devnet-up.json
trap 'keeper devnet down --port "$port"' EXIT

echo
echo "== devnet up: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["ready_s"], "s, block", d["block"])' /tmp/keeper-devnet-up.json)"
keeper devnet inspect --config "$config"
echo
echo "== WETH crashes 25 % (one real feed transaction; Aave's oracle and Morpho's oracles both read it)"
keeper devnet price --rpc "$rpc" --asset WETH --move -25
echo
keeper devnet inspect --config "$config"
