import BridgeCore
import BridgeMapping
import FoundationEssentials

extension RunState {
    struct MCPListing {
        var tools: [FunctionToolDefinition] = []
        var events: [RunEvent] = []
        var failure: RunFailure?
    }

    /// Lists the tools of each of `agent`'s MCP servers, as the SDK does when an agent starts:
    /// one `mcp_tools` span per server. A server that cannot be listed, or a tool name that
    /// collides with the agent's other tools, fails the run (retriable when the server may
    /// come back).
    /// What tools of MCP server `server` clash with: another server's tool (the SDK's words),
    /// or the agent's own YAML tool or handoff.
    static func clashMessage(server: String, agent: AgentSpec, clashes: [String], servers: [String: String]) -> String {
        let names = Set(clashes).sorted()
        if names.allSatisfy({ servers[$0] != nil }) {
            let others = Set(names.compactMap { servers[$0] }).sorted().map { "'\($0)'" }.joined(separator: ", ")
            return "Duplicate tool names found across MCP servers: \(names.joined(separator: ", "))"
                + " (MCP server '\(server)' and \(others) of agent \(agent.name))"
        }
        let described = names.map { name in
            if let other = servers[name] { return "\(name) (also on MCP server '\(other)')" }
            if agent.handoffs.contains(where: { $0.toolName == name }) {
                return "\(name) (also a handoff of the agent)"
            }
            return "\(name) (also a YAML tool of the agent)"
        }
        return "MCP server '\(server)' offers tools whose names agent \(agent.name) already uses: "
            + described.joined(separator: ", ")
    }

    /// `quiet`: no spans and no event ids (a stint resumed from its journal).
    mutating func listMCPTools(
        _ agent: AgentSpec, parent agentId: EventID, taken: Set<String>,
        quiet: Bool = false
    ) async -> MCPListing {
        mcpToolServers = [:]
        var out = MCPListing()
        guard !agent.mcpServers.isEmpty else { return out }
        guard let source = runner.mcp else {
            out.failure = RunFailure(
                type: .userError, message: "agent \(agent.name) uses MCP servers but none are configured",
                retriable: false)
            return out
        }
        var names = taken
        for server in agent.mcpServers {
            let id = quiet ? 0 : allocate()
            let start = Date()
            do {
                let tools = try await source.tools(server: server)
                out.events.append(
                    .mcpToolsListed(
                        id: id, parent: agentId, server: server, tools: tools.map(\.name), error: nil,
                        startedAt: start, endedAt: Date()))
                if let bad = tools.first(where: { !MCPServerMapping.isValidToolName($0.name) }) {
                    out.failure = RunFailure(
                        type: .userError,
                        message: MCPServerMapping.invalidToolNameMessage(server: server, tool: bad.name),
                        retriable: false)
                    return out
                }
                let clashes = tools.map(\.name).filter { names.contains($0) }
                if !clashes.isEmpty {
                    out.failure = RunFailure(
                        type: .userError,
                        message: Self.clashMessage(
                            server: server, agent: agent, clashes: clashes,
                            servers: mcpToolServers),
                        retriable: false)
                    return out
                }
                for t in tools {
                    let (parameters, strict) = MCPToolOutput.functionParameters(t)
                    out.tools.append(
                        FunctionToolDefinition(
                            name: t.name, description: t.description, parameters: parameters,
                            strict: strict))
                    names.insert(t.name)
                    mcpToolServers[t.name] = server
                }
            } catch {
                let text = error.description
                out.events.append(
                    .mcpToolsListed(
                        id: id, parent: agentId, server: server, tools: nil,
                        error: SpanErrorInfo(
                            message: RunnerMessages.spanMCPListError,
                            data: ["server": .string(server), "error": .string(text)]),
                        startedAt: start, endedAt: Date()))
                out.failure = RunFailure(
                    type: .mcpServerError, message: "MCP server '\(server)': \(text)",
                    retriable: error.retriable)
                return out
            }
        }
        return out
    }

    /// Runs one MCP tool call as the SDK's `invoke_mcp_tool` does: arguments must be a JSON
    /// object; a failed call goes back to the model as a tool error (non-fatal) and onto the
    /// span; an `isError` result goes to the model as its content and is recorded on the span.
    static func runMCPTool(_ call: PendingToolCall, runner: AgentRunner, idempotencyKey: String = "") async
        -> ToolCallOutcome
    {
        let server = call.mcpServer ?? ""
        await runner.observer.record(.mcpCall(id: call.eventId, server: server))
        var failure: String?
        var arguments: JSONValue = [:]
        let trimmed = call.arguments.trimmingCharacters(in: .whitespacesAndNewlines)
        if !trimmed.isEmpty {
            if let parsed = try? JSONValue.parse(call.arguments), parsed.objectValue != nil {
                arguments = parsed
            } else {
                failure = RunnerMessages.mcpInvalidJSON(tool: call.name, call.arguments)
            }
        }
        var converted: MCPToolOutput.Converted?
        var isError = false
        if failure == nil, let source = runner.mcp {
            do {
                // The call's stable key in `_meta`: a repeat after an interruption carries the same one.
                let meta: JSONValue = idempotencyKey.isEmpty ? [:] : [IdempotencyKey.metaKey: .string(idempotencyKey)]
                let result = try await source.call(server: server, tool: call.name, arguments: arguments, meta: meta)
                converted = MCPToolOutput.convert(
                    result, useStructuredContent: source.usesStructuredContent(server: server))
                isError = result.isError
            } catch {
                if case .rpc = error {
                    failure = error.description
                } else {
                    failure = RunnerMessages.mcpInvokeError(tool: call.name, server: server, error.description)
                }
            }
        } else if failure == nil {
            failure = RunnerMessages.mcpInvokeError(tool: call.name, server: server, "no MCP servers are configured")
        }
        if let converted {
            let spanError =
                isError
                ? SpanErrorInfo(
                    message: RunnerMessages.spanToolErrorNonFatal,
                    data: [
                        "tool_name": .string(call.name), "error": .string(converted.text),
                        "mcp_is_error": true,
                    ]) : nil
            await runner.observer.record(
                .toolEnded(id: call.eventId, output: converted.spanOutput, error: spanError, at: Date()))
            let fenced = await journal(
                JournaledCall(
                    callId: call.callId, name: call.name, output: converted.text,
                    error: spanError?.json, modelOutput: converted.modelOutput,
                    spanOutput: converted.spanOutput, mcpServer: server, raw: false),
                runner: runner)
            return ToolCallOutcome(
                call: call, output: converted.text,
                modelOutput: converted.modelOutput, fenced: fenced)
        }
        let text = failure ?? ""
        let output = RunnerMessages.toolError(text)
        let spanError = SpanErrorInfo(
            message: RunnerMessages.spanToolErrorNonFatal,
            data: ["tool_name": .string(call.name), "error": .string(text)])
        await runner.observer.record(.toolEnded(id: call.eventId, output: output, error: spanError, at: Date()))
        if await journal(
            JournaledCall(
                callId: call.callId, name: call.name, output: output, error: spanError.json,
                mcpServer: server, raw: false), runner: runner)
        {
            return ToolCallOutcome(call: call, output: output, fenced: true)
        }
        return ToolCallOutcome(call: call, output: output)
    }
}
