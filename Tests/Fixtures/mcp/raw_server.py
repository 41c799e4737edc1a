"""A hand-written stdio MCP server for protocol corners the SDK server does not show.

Modes (argv[1]): `paged` lists 5 tools over 3 pages of tools/list; `silent` never answers
anything; `hang_calls` initializes and lists but never answers tools/call; `old_version`
answers initialize with 1999-01-01.
"""
import json
import sys

mode = sys.argv[1] if len(sys.argv) > 1 else "paged"
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
    elif method == "tools/list":
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
        send({"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": "x=" + str(args.get("x"))}]}})
    else:
        send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "Method not found"}})
