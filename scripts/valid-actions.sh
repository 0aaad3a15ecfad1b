#!/usr/bin/env bash
# Measures how well a model drives the LLM agents of scenes/llm_market.ron (tess,
# tim, lena, sam, all running assets/agents/llm_agent.js): of the model's answers,
# the share that yielded at least one valid action (a tool call the agent checked
# and turned into an action), tool calls accepted, the actions the kernel then
# refused, and the model's speed (calls/s, tokens/s) over a lockstep run.
#
# Usage:
#   scripts/valid-actions.sh                      the local model (llm/install first)
#   scripts/valid-actions.sh --fake               the local server's fake (a random,
#                                                 well-formed tool call per request)
#   scripts/valid-actions.sh URL MODEL            any OpenAI-compatible server
#
# Environment:
#   ECOLOGY   the binary (default target/release/ecology; `cargo build --release`)
#   STEPS     steps of the run (default 60: each LLM agent thinks every 3 s or so)
#   PORT      port of the local server this script starts (default 8091)
set -euo pipefail
cd "$(dirname "$0")/.."
ECOLOGY=${ECOLOGY:-target/release/ecology}
STEPS=${STEPS:-60}
PORT=${PORT:-8091}
work=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT

if [ $# -ge 2 ]; then
    url=$1
    model=$2
else
    fake=()
    model=smollm2-135m
    if [ "${1:-}" = "--fake" ]; then
        fake=(--fake)
        model=fake
    fi
    node llm/server.mjs --port "$PORT" "${fake[@]}" 2>"$work/server.log" &
    server=$!
    url="http://127.0.0.1:$PORT/v1"
    for _ in $(seq 1 600); do
        curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break
        sleep 0.2
    done
fi

start=$(date +%s.%N)
"$ECOLOGY" run scenes/llm_market.ron --steps "$STEPS" --llm-endpoint "$url" --llm-model "$model" \
    --save-scene "$work/saved.ron" --report "$work/report.json" --events "$work/events.jsonl" -q
end=$(date +%s.%N)

python3 - "$work" "$model" "$start" "$end" <<'PY'
import json, re, sys
work, model, start, end = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
agents = ["tess", "tim", "lena", "sam"]
saved = open(f"{work}/saved.ron", encoding="utf-8").read()
total = {"answers": 0, "valid": 0, "calls": 0, "accepted": 0}
for agent in agents:
    m = re.search(r'id: "%s_notebook".*?content: "((?:[^"\\]|\\.)*)"' % agent, saved, re.S)
    if not m:
        continue
    raw = re.sub(r"\\u\{([0-9a-fA-F]+)\}", lambda x: chr(int(x.group(1), 16)), m.group(1))
    text = raw.encode("utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8")
    record = json.loads(text.split("== last turn ==\n")[-1])
    for key in total:
        total[key] += (record.get("tally") or {}).get(key, 0)
refused = 0
for line in open(f"{work}/events.jsonl", encoding="utf-8"):
    event = json.loads(line)
    if event["actor"] in agents and event["type"] == "ACTION_FAILED":
        refused += 1
llm = json.load(open(f"{work}/report.json"))["llm"]
wall = end - start
tokens = llm["prompt_tokens"] + llm["completion_tokens"]
share = total["valid"] / total["answers"] if total["answers"] else 0.0
print(f"model {model}: {total['answers']} answers acted on, {total['valid']} yielded a valid action ({share:.0%})")
print(f"  tool calls: {total['accepted']} of {total['calls']} accepted; actions the kernel then refused: {refused}")
print(f"  {llm['calls']} calls ({llm['failed']} failed) in {wall:.1f} s: {llm['calls'] / wall:.2f} calls/s, "
      f"{tokens / wall:.0f} tokens/s ({llm['prompt_tokens']} prompt + {llm['completion_tokens']} completion)")
PY
