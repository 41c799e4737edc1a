#!/usr/bin/env python3
"""A scripted loopback stand-in for OpenAI's Responses API (stdlib only).

Used by bench/sdk-compare.sh so that bridge and the Python Agents SDK talk to the very same
model, which answers from the request alone, as a real model would see it:

  1. a request that offers a `transfer_to_<agent>` tool and has not called one yet
     -> that handoff as one function_call (the Project Manager's turn);
  2. a request whose other function tools have not been called yet
     -> one function_call per tool, all in one response (the specialist's turn);
  3. otherwise -> a final assistant message.

Arguments are generated from each tool's JSON Schema (strings "x", numbers 1, booleans false).

Endpoints:
  POST /v1/responses          the script above (after --latency-ms)
  POST /v1/traces/ingest      200 {} (in case a trace exporter is left on)
  GET  /stats                 {"responses": n, "traces": n, "errors": n, "connections": n, "rate_limited": n}

With --rpm N it also enforces a rate limit as OpenAI may, over periods shorter than a minute: a
token bucket of N requests a minute holding 10 s of burst (N/6); a request that finds it empty
is answered 429 with `x-ratelimit-reset-requests` (the time until one request is available).

It is an asyncio server with HTTP/1.1 keep-alive (and `Expect: 100-continue`), so 50 and more
concurrent clients are served without a thread per connection. It runs as its own process:
its CPU is counted for neither contender.

  python3 bench/standin_model.py --port 0 --latency-ms 200 --port-file /tmp/port
"""
import argparse
import asyncio
import itertools
import json
import sys

STATS = {"responses": 0, "traces": 0, "errors": 0, "connections": 0, "rate_limited": 0}
BUCKET = {"rpm": 0.0, "level": 0.0, "at": 0.0}


def _take():
    """0 when the bucket grants a request, else the seconds until it would."""
    rpm = BUCKET["rpm"]
    if rpm <= 0:
        return 0.0
    import time
    t = time.monotonic()
    cap = rpm / 6.0
    BUCKET["level"] = min(cap, BUCKET["level"] + (t - BUCKET["at"]) * rpm / 60.0)
    BUCKET["at"] = t
    if BUCKET["level"] >= 1.0:
        BUCKET["level"] -= 1.0
        return 0.0
    return (1.0 - BUCKET["level"]) * 60.0 / rpm
_ids = itertools.count(1)


def _value_for(schema):
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "string")
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    if t == "integer" or t == "number":
        return 1
    if t == "boolean":
        return False
    if t == "array":
        return []
    if t == "object":
        return _args_for(schema)
    return "x"


def _args_for(schema):
    props = schema.get("properties") or {}
    return {name: _value_for(sub) for name, sub in props.items()}


def reply(body):
    tools = [t for t in body.get("tools") or [] if t.get("type") == "function"]
    items = body.get("input")
    if not isinstance(items, list):
        items = []
    called = {i.get("name") for i in items if isinstance(i, dict) and i.get("type") == "function_call"}
    n = next(_ids)

    def call(tool):
        return {"type": "function_call", "id": "fc_%d_%s" % (n, tool["name"]),
                "call_id": "call_%d_%s" % (n, tool["name"]), "name": tool["name"],
                "arguments": json.dumps(_args_for(tool.get("parameters") or {}), separators=(",", ":")),
                "status": "completed"}

    handoffs = [t for t in tools if t["name"].startswith("transfer_to_")]
    plain = [t for t in tools if not t["name"].startswith("transfer_to_")]
    if handoffs and not any(c and c.startswith("transfer_to_") for c in called):
        output = [call(handoffs[0])]
    elif plain and not any(t["name"] in called for t in plain):
        output = [call(t) for t in plain]
    else:
        output = [{"type": "message", "id": "msg_%d" % n, "role": "assistant", "status": "completed",
                   "content": [{"type": "output_text", "text": "All done.", "annotations": []}]}]
    return {
        "id": "resp_%d" % n, "object": "response", "created_at": 1700000000, "status": "completed",
        "model": body.get("model") or "gpt-4.1", "output": output, "error": None,
        "incomplete_details": None, "instructions": None, "metadata": {}, "parallel_tool_calls": True,
        "temperature": None, "top_p": None, "tool_choice": "auto", "tools": [],
        "usage": {"input_tokens": 100, "output_tokens": 20, "total_tokens": 120,
                  "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens_details": {"reasoning_tokens": 0}},
    }


def _take_wait():
    return (1.0 - BUCKET["level"]) * 60.0 / BUCKET["rpm"] if BUCKET["rpm"] > 0 else 0.0


def _response(status, payload, keep_alive, extra=""):
    body = json.dumps(payload, separators=(",", ":")).encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests"}.get(status, "OK")
    head = ("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s"
            "Connection: %s\r\n\r\n" % (status, reason, len(body), extra, "keep-alive" if keep_alive else "close"))
    return head.encode() + body


async def _read_body(reader, headers):
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(await reader.readexactly(size))
            await reader.readline()
    return await reader.readexactly(int(headers.get("content-length", "0") or "0"))


async def handle(reader, writer, latency):
    STATS["connections"] += 1
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            if not line.strip():
                continue
            method, path, version = line.decode("latin-1").split(" ", 2)
            headers = {}
            while True:
                h = await reader.readline()
                if h in (b"\r\n", b"\n", b""):
                    break
                k, _, v = h.decode("latin-1").partition(":")
                headers[k.strip().lower()] = v.strip()
            if headers.get("expect", "").lower() == "100-continue":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            raw = await _read_body(reader, headers)
            keep_alive = headers.get("connection", "").lower() != "close" and "1.0" not in version
            path = path.split("?", 1)[0]
            if method == "GET" and path == "/stats":
                out = _response(200, STATS, keep_alive)
            elif method == "POST" and path.endswith("/responses") and _take() > 0:
                STATS["rate_limited"] += 1
                wait = max(0.001, _take_wait())
                out = _response(429, {"error": {"message": "Rate limit reached for requests", "type": "requests",
                                                "code": "rate_limit_exceeded"}}, keep_alive,
                                "x-ratelimit-reset-requests: %dms\r\n" % int(wait * 1000 + 1))
            elif method == "POST" and path.endswith("/responses"):
                try:
                    payload = reply(json.loads(raw or b"{}"))
                    STATS["responses"] += 1
                    if latency > 0:
                        await asyncio.sleep(latency)
                    out = _response(200, payload, keep_alive)
                except Exception as e:  # a malformed request: tell the client, count it
                    STATS["errors"] += 1
                    out = _response(400, {"error": {"message": str(e), "type": "invalid_request_error"}}, keep_alive)
            elif method == "POST" and path.endswith("/traces/ingest"):
                STATS["traces"] += 1
                out = _response(200, {}, keep_alive)
            else:
                STATS["errors"] += 1
                out = _response(404, {"error": {"message": "not here", "type": "invalid_request_error"}}, keep_alive)
            writer.write(out)
            await writer.drain()
            if not keep_alive:
                return
    except (ConnectionError, asyncio.IncompleteReadError, ValueError):
        return
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--port-file", help="write the port here once listening")
    p.add_argument("--latency-ms", type=float, default=0.0, help="delay before each /v1/responses answer")
    p.add_argument("--rpm", type=float, default=0.0, help="rate limit: requests a minute (10 s of burst); 0: none")
    a = p.parse_args()
    if a.rpm > 0:
        import time
        BUCKET.update(rpm=a.rpm, level=a.rpm / 6.0, at=time.monotonic())
    server = await asyncio.start_server(lambda r, w: handle(r, w, a.latency_ms / 1000.0), a.host, a.port,
                                        backlog=1024)
    port = server.sockets[0].getsockname()[1]
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write(str(port))
        import os
        os.replace(a.port_file + ".tmp", a.port_file)
    print("stand-in model on http://%s:%d/v1 (latency %g ms)" % (a.host, port, a.latency_ms), file=sys.stderr)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
