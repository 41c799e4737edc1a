"""Reads a run back from a real Phoenix (bench/phoenix-interop.sh) and checks what a user sees.

usage: phoenix_check.py BASE_URL PROJECT EXPECTED_SPANS
Prints one line per check and a summary; exits 1 on the first failed check.
"""
import json
import sys
import time
import urllib.request
from collections import Counter

base, project, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])


def spans():
    out, cursor = [], None
    while True:
        url = f"{base}/v1/projects/{project}/spans?limit=1000" + (f"&cursor={cursor}" if cursor else "")
        with urllib.request.urlopen(url, timeout=30) as r:
            body = json.load(r)
        out += body["data"]
        cursor = body.get("next_cursor")
        if not cursor:
            return out


def attr(span, key):
    """A span attribute by its dotted key, whether Phoenix returns it flat or nested."""
    a = span.get("attributes") or {}
    if key in a:
        return a[key]
    node = a
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        sys.exit(1)


# Phoenix ingests asynchronously: wait (up to 60 s) until every span is there.
deadline = time.time() + 60
while True:
    got = spans()
    if len(got) >= expected or time.time() > deadline:
        break
    time.sleep(1)
check(len(got) == expected, f"{len(got)} of {expected} spans in project {project!r}")
kinds = Counter(s["span_kind"] for s in got)
print("     span kinds: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
check(kinds.get("UNKNOWN", 0) == 0, "no span of kind UNKNOWN")
statuses = Counter(s["status_code"] for s in got)
check(statuses.get("UNSET", 0) == 0, f"every status set ({dict(statuses)})")

agents = [s for s in got if s["name"].startswith("invoke_agent ")]
check(agents and all(s["span_kind"] == "AGENT" for s in agents), f"{len(agents)} invoke_agent spans, all AGENT")

llms = [s for s in got if s["span_kind"] == "LLM"]
check(bool(llms) and all(s["name"].startswith("chat") for s in llms), f"{len(llms)} LLM spans named chat …")
with_tokens = [s for s in llms if (attr(s, "llm.token_count.prompt") or 0) > 0 and attr(s, "llm.token_count.completion") is not None]
check(len(with_tokens) == len(llms), f"token counts on {len(with_tokens)} of {len(llms)} LLM spans")
with_io = [s for s in llms if attr(s, "input.value") and attr(s, "output.value")]
check(len(with_io) == len(llms), f"input and output on {len(with_io)} of {len(llms)} LLM spans")
with_messages = [s for s in llms if attr(s, "llm.input_messages") or attr(s, "llm.input_messages.0.message.role")]
check(len(with_messages) == len(llms), f"input messages on {len(with_messages)} of {len(llms)} LLM spans")

tools = [s for s in got if s["name"].startswith("execute_tool ")]
check(bool(tools) and all(s["span_kind"] == "TOOL" for s in tools), f"{len(tools)} execute_tool spans, all TOOL")
check(all(attr(s, "tool.name") and attr(s, "input.value") is not None for s in tools), "tool name and input on every tool span")
check(all(attr(s, "gen_ai.tool.call.id") for s in tools), "gen_ai.tool.call.id on every tool span")
check(all(attr(s, "output.value") is not None or s["status_code"] == "ERROR" for s in tools), "output on every tool span that did not fail")

mcp_tools = [s for s in tools if attr(s, "mcp.server.name")]
check(bool(mcp_tools), f"{len(mcp_tools)} MCP tool spans name their server")
lists = [s for s in got if s["name"].startswith("list_tools ")]
check(all(s["span_kind"] == "CHAIN" and attr(s, "mcp.server.name") for s in lists), f"{len(lists)} list_tools spans, CHAIN, server named")

handoffs = [s for s in got if s["name"].startswith("handoff ")]
check(all(s["span_kind"] == "TOOL" for s in handoffs), f"{len(handoffs)} handoff spans, TOOL")
roots = [s for s in got if not s.get("parent_id")]
check(all(attr(s, "bridge.task.id") for s in roots), f"task id on the {len(roots)} root spans")
check(all(attr(s, "gen_ai.conversation.id") for s in got), "gen_ai.conversation.id on every span")
print(f"phoenix: {len(got)} spans checked, {len(roots)} traces")
