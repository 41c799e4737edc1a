"""team_tools over MCP: the whole server. Needs the MCP SDK (`pip install mcp`; scripts/mcp-venv.sh)."""
try:
    from mcp.server.mcpserver import MCPServer  # mcp 2.x (the current major version)
except ImportError:
    from mcp.server.fastmcp import FastMCP as MCPServer  # mcp 1.x, where it was called FastMCP

from team_tools import estimate_reading_time, format_citation  # the existing functions

mcp = MCPServer("team_tools")
for tool in (estimate_reading_time, format_citation):
    mcp.tool()(tool)

if __name__ == "__main__":
    mcp.run()  # stdio; mcp.run(transport="streamable-http") serves http://127.0.0.1:8000/mcp instead
