"""An MCP server written with the official Python SDK for bridge's tests, on mcp 2.x (MCPServer)
or 1.x (FastMCP): `fastmcp_server.py stdio` or `fastmcp_server.py http PORT`."""
import os
import sys
import time

try:
    from mcp.server.mcpserver import Image, MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    V2 = True
except ImportError:
    from mcp.server.fastmcp import FastMCP as MCPServer, Image
    from mcp.server.fastmcp.exceptions import ToolError
    V2 = False

port = int(sys.argv[2]) if len(sys.argv) > 2 else 8000
# 2.x takes the HTTP address in run(), 1.x in the constructor.
http_address = {"host": "127.0.0.1", "port": port}
mcp = MCPServer("test_tools", log_level="WARNING", **({} if V2 else http_address))


@mcp.tool()
def echo(text: str) -> str:
    """Returns the text unchanged."""
    return text


@mcp.tool()
def add(a: int, b: int) -> int:
    """Adds two integers."""
    return a + b


@mcp.tool()
def pixel() -> Image:
    """Returns a one-pixel PNG."""
    png = bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")
    return Image(data=png, format="png")


@mcp.tool()
def fail(reason: str) -> str:
    """Always raises."""
    raise ToolError(f"refused: {reason}")


@mcp.tool()
def crash() -> str:
    """Kills the server in the middle of the call."""
    os._exit(3)


@mcp.tool()
def env_probe(name: str) -> str:
    """Returns an environment variable of the server process, or <unset>."""
    return os.environ.get(name, "<unset>")


@mcp.tool()
def pid() -> int:
    """The server's process id."""
    return os.getpid()


@mcp.tool()
def sleep(seconds: float) -> str:
    """Sleeps, then answers."""
    time.sleep(seconds)
    return "slept"


if __name__ == "__main__":
    if sys.argv[1:2] == ["http"]:
        mcp.run(transport="streamable-http", **(http_address if V2 else {}))
    else:
        mcp.run(transport="stdio")
