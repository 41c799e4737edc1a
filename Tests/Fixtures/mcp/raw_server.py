"""A hand-written stdio MCP server for protocol corners the SDK server does not show.

Modes (argv[1]): `paged` lists 5 tools over 3 pages of tools/list; `silent` never answers
anything; `hang_calls` initializes and lists but never answers tools/call; `old_version`
answers initialize with 1999-01-01; `fork_holder PIDFILE` first forks a child that calls
setsid() and sleeps 300 s holding stdout and stderr (its pid goes to PIDFILE), and exits with
status 5 on a call of the tool `exit`; `bad_json`, `deep_json` and `huge` answer tools/list with
a line that is not JSON, with JSON nested 700 deep, and with a 17 MiB message; `names` lists
tools whose names OpenAI refuses; `slow_pages` is `paged` with each page 4 s late; `echo_meta`
answers every tools/call with the JSON of its `_meta`.
"""
import json
import os
import sys
import time

mode = sys.argv[1] if len(sys.argv) > 1 else "paged"
if mode == "fork_holder":
    child = os.fork()
    if child == 0:
        os.setsid()
        time.sleep(300)
        os._exit(0)
    with open(sys.argv[2], "w") as f:
        f.write(str(child))
TOOLS = [{"name": f"t{i}", "description": f"tool {i}",
          "inputSchema": {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"],
                          "additionalProperties": False}} for i in range(5)]


def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    msg = json.loads(line)
    if mode == "silent" or "id" not in msg:
        continue
    method, mid = msg.get("method"), msg["id"]
    if method == "initialize":
        version = "1999-01-01" if mode == "old_version" else msg["params"]["protocolVersion"]
        send({"jsonrpc": "2.0", "id": mid, "result": {"protocolVersion": version, "capabilities": {"tools": {}},
                                                      "serverInfo": {"name": "raw", "version": "0"}}})
    elif method == "tools/list" and mode == "bad_json":
        sys.stdout.write("this is not JSON\n")
        sys.stdout.flush()
    elif method == "tools/list" and mode == "deep_json":
        sys.stdout.write("[" * 700 + "]" * 700 + "\n")
        sys.stdout.flush()
    elif method == "tools/list" and mode == "huge":
        send({"jsonrpc": "2.0", "id": mid, "result": {"tools": [], "padding": "x" * (17 * 1024 * 1024)}})
    elif method == "tools/list" and mode == "names":
        names = ["ok_name", "", "has space", "new\nline", "x" * 300]
        send({"jsonrpc": "2.0", "id": mid, "result": {"tools": [{"name": n, "inputSchema": {"type": "object"}} for n in names]}})
    elif method == "tools/call" and msg["params"].get("name") == "exit":
        os._exit(5)
    elif method == "tools/list":
        if mode == "slow_pages":
            time.sleep(4)
        cursor = int((msg.get("params") or {}).get("cursor") or 0)
        page = TOOLS[cursor:cursor + 2]
        result = {"tools": page}
        if cursor + 2 < len(TOOLS):
            result["nextCursor"] = str(cursor + 2)
        send({"jsonrpc": "2.0", "id": mid, "result": result})
    elif method == "tools/call":
        if mode == "hang_calls":
            continue
        args = msg["params"].get("arguments") or {}
        if mode == "echo_meta":
            text = json.dumps(msg["params"].get("_meta") or {})
            send({"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": text}]}})
            continue
        send({"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": "x=" + str(args.get("x"))}]}})
    else:
        send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "Method not found"}})
