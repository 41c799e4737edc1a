import BridgeCore
import BridgeMapping
import BridgeRunner
import BridgeTraceModel
import BridgeTracing
import Foundation
import Testing

@Suite struct RunnerTests {
    @Test func offlineTeamBuildsTheSDKTree() async throws {
        let spec = Fixture.team()
        let model = RecordingModel(inner: OfflineModel())
        let (result, spans, events) = await Fixture.run(spec, model: model)
        checkBalanced(events)
        #expect(result.status == .completed)
        #expect(result.lastAgent == "Researcher")
        #expect(result.turns == 4)
        #expect(result.toolCalls == 3)
        let output = try #require(result.finalOutput)
        #expect(output == "Researcher done: store_data → [{\"tool\":\"store_data\"}]")

        let tree = SpanTree(spans: spans)
        #expect(spans.allSatisfy { $0.id.isWellFormed && $0.traceId == spec.traceId })
        let task = try #require(tree.root)
        #expect(
            task.spanData == [
                "type": "custom", "name": "task",
                "data": [
                    "sdk_span_type": "task", "name": "bridge task 42",
                    "usage": task.spanData["data"]!["usage"]!,
                ],
            ])
        let taskUsage = try #require(task.spanData["data"]?["usage"]?.objectValue)
        #expect(
            Set(taskUsage.keys) == [
                "input_tokens", "output_tokens", "cached_input_tokens", "cache_write_input_tokens",
                "requests", "total_tokens",
            ])
        #expect(taskUsage["requests"] == 4)

        let agents = tree.children(task)
        #expect(agents.map(SpanTree.label) == ["agent", "agent"])
        #expect(
            agents[0].spanData == [
                "type": "agent", "name": "Project Manager",
                "handoffs": ["Researcher", "Content Specialist"],
                "tools": ["get_team_roles_and_status", "create_and_assign_sub_task"],
                "output_type": "str",
            ])
        #expect(agents[1].spanData["name"] == "Researcher")
        #expect(agents[1].spanData["tools"] == ["store_data", "web_search"])

        let pmTurns = tree.children(agents[0])
        #expect(pmTurns.map(SpanTree.label) == ["custom:turn", "custom:turn"])
        #expect(pmTurns.map { $0.spanData["data"]?["turn"] } == [1, 2])
        #expect(pmTurns[0].spanData["data"]?["agent_name"] == "Project Manager")
        let turnUsage = try #require(pmTurns[0].spanData["data"]?["usage"]?.objectValue)
        #expect(
            Set(turnUsage.keys) == ["input_tokens", "output_tokens", "cached_input_tokens", "cache_write_input_tokens"])

        let turn1 = tree.children(pmTurns[0])
        #expect(turn1.map(SpanTree.label).sorted() == ["function", "function", "generation"])
        let functions = turn1.filter { $0.type == "function" }
        #expect(
            Set(functions.compactMap { $0.spanData["name"]?.stringValue })
                == ["get_team_roles_and_status", "create_and_assign_sub_task"])
        let roles = try #require(functions.first { $0.spanData["name"] == "get_team_roles_and_status" })
        #expect(roles.spanData["input"] == "{\"include_inactive\":false,\"workspace_id\":\"ws-1\"}")
        #expect(roles.spanData["output"] == "[{\"tool\":\"get_team_roles_and_status\"}]")
        #expect(roles.spanData["mcp_data"] == .null)
        // The SDK's keys, plus bridge's note of the model's call id (OTLP's gen_ai.tool.call.id;
        // the OpenAI exporter leaves it out, as it does text_replaced).
        #expect(Set(roles.spanData.objectValue!.keys) == ["type", "name", "input", "output", "mcp_data", "call_id"])
        #expect(roles.spanData["call_id"]?.stringValue?.isEmpty == false)
        let generation = try #require(turn1.first { $0.type == "generation" })
        #expect(
            Set(generation.spanData.objectValue!.keys) == ["type", "input", "output", "model", "model_config", "usage"])
        #expect(generation.spanData["model"] == "gpt-4.1")
        #expect(generation.spanData["model_config"] == ["temperature": 0.2])
        #expect(
            generation.spanData["input"]?.arrayValue?.first == ["content": "You manage the team.", "role": "system"])

        let turn2 = tree.children(pmTurns[1])
        #expect(turn2.map(SpanTree.label) == ["generation", "handoff"])
        #expect(turn2[1].spanData == ["type": "handoff", "from_agent": "Project Manager", "to_agent": "Researcher"])

        let rTurns = tree.children(agents[1])
        #expect(rTurns.map { $0.spanData["data"]?["turn"] } == [3, 4])
        #expect(rTurns.map { $0.spanData["data"]?["agent_name"] } == ["Researcher", "Researcher"])
        #expect(tree.children(rTurns[0]).map(SpanTree.label).sorted() == ["function", "generation"])
        #expect(tree.children(rTurns[1]).map(SpanTree.label) == ["generation"])
        #expect(spans.count == 15)  // task, 2 agents, 4 turns, 4 generations, 3 functions, 1 handoff

        // The next agent gets the full history, including the handoff call and its output.
        let requests = await model.requests.all
        #expect(requests.map(\.turn) == [1, 2, 3, 4])
        let r3 = requests[2].input
        #expect(r3.first == ["role": "user", "content": "Plan the launch."])
        let transferCall = try #require(r3.first { $0["name"] == "transfer_to_researcher" })
        #expect(
            r3.contains([
                "type": "function_call_output", "call_id": transferCall["call_id"]!,
                "output": "{\"assistant\": \"Researcher\"}",
            ]))
        #expect(r3.filter { $0["type"] == "function_call" }.count == 3)
        // Handoff tools as offered to the model.
        let handoffTool = try #require(requests[0].functionTools.first { $0.name == "transfer_to_researcher" })
        #expect(handoffTool.description == "Handoff to the Researcher agent to handle the request. Finds facts.")
        #expect(
            handoffTool.parameters == [
                "type": "object", "properties": [:], "required": [], "additionalProperties": false,
            ])
        #expect(handoffTool.strict)
        #expect(requests[0].functionTools.map(\.name).contains("transfer_to_content_specialist"))
        #expect(requests[2].hostedTools == [HostedToolSpec(type: "web_search")])

        // Transcript: model output items and tool outputs, in order.
        #expect(result.transcript.count == 9)  // 2 calls + 2 outputs, handoff call + output, call + output, message
        #expect(result.transcript.filter { $0["type"] == "function_call_output" }.count == 4)
    }

    @Test func maxTurnsAcrossAgents() async throws {
        let (result, spans, events) = await Fixture.run(Fixture.team(maxTurns: 3))
        checkBalanced(events)
        #expect(result.status == .failed)
        let failure = try #require(result.error)
        #expect(failure.type == .maxTurnsExceeded)
        #expect(failure.message == "Max turns (3) exceeded")
        #expect(!failure.retriable)
        let tree = SpanTree(spans: spans)
        let agents = tree.children(tree.root!)
        #expect(agents.count == 2)
        #expect(agents[0].error == nil)
        #expect(agents[1].error == ["message": "Max turns exceeded", "data": ["max_turns": 3]])
        #expect(spans.filter { $0.spanData["name"] == "turn" }.count == 3)
    }

    @Test func toolErrorsGoBackToTheModel() async throws {
        let tools = FakeTools(failures: ["create_and_assign_sub_task": "duplicate sub-task"])
        let (result, spans, events) = await Fixture.run(Fixture.team(), tools: tools)
        checkBalanced(events)
        #expect(result.status == .completed)
        let outputs = result.transcript.filter { $0["type"] == "function_call_output" }.compactMap {
            $0["output"]?.stringValue
        }
        #expect(
            outputs.contains("An error occurred while running the tool. Please try again. Error: duplicate sub-task"))
        let span = try #require(spans.first { $0.spanData["name"] == "create_and_assign_sub_task" })
        #expect(
            span.error == [
                "message": "Error running tool (non-fatal)",
                "data": ["tool_name": "create_and_assign_sub_task", "error": "duplicate sub-task"],
            ])
        #expect(
            span.spanData["output"]
                == "An error occurred while running the tool. Please try again. Error: duplicate sub-task")
    }

    @Test func unparseableArgumentsGoBackToTheModel() async throws {
        let model = ScriptedModel { r in
            r.turn == 1 ? [call("store_data", "call_1", "{\"key\": oops")] : [say("ok")]
        }
        var spec = Fixture.team()
        spec.startingAgent = "Researcher"
        let tools = FakeTools()
        let (result, spans, events) = await Fixture.run(spec, model: model, tools: tools)
        checkBalanced(events)
        #expect(result.finalOutput == "ok")
        let output = try #require(
            result.transcript.first { $0["type"] == "function_call_output" }?["output"]?.stringValue)
        #expect(
            output.hasPrefix(
                "An error occurred while parsing tool arguments. Please try again with valid JSON. Error: "))
        #expect(await tools.log.entries.isEmpty)
        let span = try #require(spans.first { $0.type == "function" })
        #expect(span.error?["message"] == "Error running tool")
        #expect(span.error?["data"]?["tool_name"] == "store_data")
        #expect(span.spanData["input"] == "{\"key\": oops")
    }

    @Test func multipleHandoffsFirstWins() async throws {
        let model = ScriptedModel { r in
            if r.turn == 1 {
                return [call("transfer_to_content_specialist", "call_a"), call("transfer_to_researcher", "call_b")]
            }
            return [say("\(r.agent.name) answers")]
        }
        let (result, spans, events) = await Fixture.run(Fixture.team(), model: model)
        checkBalanced(events)
        #expect(result.finalOutput == "Content Specialist answers")
        #expect(result.lastAgent == "Content Specialist")
        let outputs = result.transcript.filter { $0["type"] == "function_call_output" }
        #expect(
            outputs == [
                [
                    "type": "function_call_output", "call_id": "call_b",
                    "output": "Multiple handoffs detected, ignoring this one.",
                ],
                [
                    "type": "function_call_output", "call_id": "call_a",
                    "output": "{\"assistant\": \"Content Specialist\"}",
                ],
            ])
        let handoffs = spans.filter { $0.type == "handoff" }
        #expect(handoffs.count == 1)
        #expect(handoffs[0].spanData["to_agent"] == "Content Specialist")
        #expect(
            handoffs[0].error == [
                "message": "Multiple handoffs requested",
                "data": ["requested_agents": ["Content Specialist", "Researcher"]],
            ])
        // The handoff span hangs under the source agent's turn.
        let parent = try #require(spans.first { $0.id == handoffs[0].parentId })
        #expect(parent.spanData["data"]?["agent_name"] == "Project Manager")
    }

    @Test func stopOnFirstTool() async throws {
        let tools = FakeTools(outputs: [
            "get_team_roles_and_status": "roles!", "create_and_assign_sub_task": "created!",
        ])
        let (result, spans, events) = await Fixture.run(Fixture.team(pmBehavior: .stopOnFirstTool), tools: tools)
        checkBalanced(events)
        #expect(result.status == .completed)
        #expect(result.finalOutput == "roles!")
        #expect(result.turns == 1)
        #expect(spans.filter { $0.type == "agent" }.count == 1)
    }

    @Test func stopAtToolNames() async throws {
        let tools = FakeTools(outputs: [
            "get_team_roles_and_status": "roles!", "create_and_assign_sub_task": "created!",
        ])
        let spec = Fixture.team(pmBehavior: .stopAtToolNames(["create_and_assign_sub_task"]))
        let (result, _, _) = await Fixture.run(spec, tools: tools)
        #expect(result.finalOutput == "created!")
        let (other, _, _) = await Fixture.run(Fixture.team(pmBehavior: .stopAtToolNames(["nothing"])), tools: tools)
        #expect(other.lastAgent == "Researcher")
    }

    @Test func toolCallsRunConcurrently() async throws {
        let tools = FakeTools(delayMs: 300)
        let (result, _, _) = await Fixture.run(Fixture.team(pmBehavior: .stopOnFirstTool), tools: tools)
        #expect(result.status == .completed)
        let entries = await tools.log.entries
        #expect(entries.count == 2)
        // Each started before the other ended.
        #expect(entries[0].start < entries[1].end && entries[1].start < entries[0].end)
    }

    @Test func unknownToolFailsTheRun() async throws {
        let model = ScriptedModel { _ in [call("drop_tables", "call_x")] }
        let (result, spans, events) = await Fixture.run(Fixture.team(), model: model)
        checkBalanced(events)
        #expect(result.status == .failed)
        #expect(result.error?.type == .modelBehaviorError)
        #expect(result.error?.message == "Tool drop_tables not found in agent Project Manager")
        let turn = try #require(spans.first { $0.spanData["name"] == "turn" })
        #expect(turn.error == ["message": "Tool not found", "data": ["tool_name": "drop_tables"]])
    }

    @Test func modelErrorsFailTheRun() async throws {
        let model = ScriptedModel { _ in
            throw ModelProviderError("HTTP 503: overloaded", retriable: true, statusCode: 503)
        }
        let (result, spans, events) = await Fixture.run(Fixture.team(), model: model)
        checkBalanced(events)
        #expect(result.status == .failed)
        #expect(result.error?.type == .modelError)
        #expect(result.error?.retriable == true)
        let generation = try #require(spans.first { $0.type == "generation" })
        #expect(generation.error == ["message": "Error getting response", "data": ["error": "HTTP 503: overloaded"]])
        let agent = try #require(spans.first { $0.type == "agent" })
        #expect(agent.error?["message"] == "Error in agent run")
    }

    @Test func sensitiveDataOff() async throws {
        let tools = FakeTools(failures: ["create_and_assign_sub_task": "secret detail"])
        let (_, spans, _) = await Fixture.run(Fixture.team(sensitive: false), tools: tools, sensitive: false)
        let functions = spans.filter { $0.type == "function" }
        #expect(!functions.isEmpty)
        #expect(functions.allSatisfy { $0.spanData["input"] == .null && $0.spanData["output"] == .null })
        let generations = spans.filter { $0.type == "generation" }
        #expect(generations.allSatisfy { $0.spanData["input"] == .null && $0.spanData["output"] == .null })
        #expect(generations.allSatisfy { $0.spanData["usage"] != .null })
        let failed = try #require(functions.first { $0.error != nil })
        #expect(failed.error?["data"]?["error"] == "Tool execution failed. Error details are redacted.")
        #expect(!spans.contains { $0.exportJSON.compact.contains("secret detail") })
    }

    @Test func secretsAreScrubbed() async throws {
        let spec = Fixture.team()
        let sink = MemorySpanSink()
        let recorder = TraceRecorder(spec: spec, sinks: [sink], includeSensitiveData: true, secrets: ["sk-live-123456"])
        let tools = FakeTools(outputs: ["store_data": "token sk-live-123456 leaked"])
        _ = await AgentRunner(model: OfflineModel(), tools: tools, observer: recorder).run(spec, taskRow: [:])
        let all = await sink.spans.map(\.exportJSON.compact).joined()
        #expect(!all.contains("sk-live-123456"))
        #expect(all.contains("token *** leaked"))
    }

    @Test func offlineModelIsDeterministic() async throws {
        let (a, _, _) = await Fixture.run(Fixture.team())
        let (b, _, _) = await Fixture.run(Fixture.team())
        #expect(a.transcript == b.transcript)
        #expect(a.usage == b.usage)
        #expect(a.usage.requests == 4)
        let ids = a.transcript.compactMap { $0["call_id"]?.stringValue }
        #expect(ids.allSatisfy { $0.hasPrefix("call_") && $0.count == 29 })
    }
}

// MARK: - Offline model schema arguments

@Suite struct OfflineSchemaTests {
    @Test func placeholdersByType() {
        let schema: JSONValue = [
            "type": "object",
            "properties": [
                "s": ["type": "string"], "i": ["type": "integer"], "n": ["type": "number"], "b": ["type": "boolean"],
                "a": ["type": "array", "items": ["type": "string"]],
                "o": [
                    "type": "object", "properties": ["x": ["type": "string"]], "required": ["x"],
                    "additionalProperties": false,
                ],
                "nullable": ["type": ["string", "null"]],
            ],
        ]
        #expect(
            OfflineModel.exampleArguments(for: schema) == [
                "s": "example", "i": 1, "n": 1, "b": true, "a": [], "o": ["x": "example"], "nullable": "example",
            ])
    }

    @Test func defaultsExamplesEnums() {
        let schema: JSONValue = [
            "type": "object",
            "properties": [
                "d": ["type": "integer", "default": 7, "examples": [3]],
                "e": ["type": "string", "examples": ["first", "second"], "enum": ["x"]],
                "f": ["type": "string", "enum": ["high", "low"]],
                "min": ["type": "integer", "minimum": 5],
                "any": ["anyOf": [["type": "null"], ["type": "boolean"]]],
            ],
        ]
        #expect(
            OfflineModel.exampleArguments(for: schema) == ["d": 7, "e": "first", "f": "high", "min": 5, "any": true])
    }

    @Test func nonStrictTakesRequiredOnly() {
        let schema: JSONValue = [
            "type": "object", "properties": ["a": ["type": "string"], "b": ["type": "string"]], "required": ["b"],
        ]
        #expect(OfflineModel.exampleArguments(for: schema, strict: false) == ["b": "example"])
        #expect(OfflineModel.exampleArguments(for: schema, strict: true) == ["a": "example", "b": "example"])
        #expect(OfflineModel.exampleArguments(for: [:]) == [:])
    }
}

// MARK: - Span format

@Suite struct SpanFormatTests {
    @Test func isoTimestampsLikePython() {
        let d = Date(timeIntervalSince1970: 1_795_683_824.123456)
        #expect(SDKTime.iso(d) == "2026-11-26T09:03:44.123456+00:00")
        #expect(SDKTime.iso(Date(timeIntervalSince1970: 1_795_683_824)) == "2026-11-26T09:03:44+00:00")
    }

    @Test func spanIds() {
        let id = SpanID.random()
        #expect(id.isWellFormed)
        #expect(id != SpanID.random())
    }

    @Test func exportShapes() {
        let span = SpanRecord(
            id: "span_0123456789abcdef01234567", traceId: TraceID("trace_" + String(repeating: "a", count: 32)),
            parentId: nil, startedAt: Date(timeIntervalSince1970: 0.5), endedAt: Date(timeIntervalSince1970: 1),
            spanData: ["type": "handoff", "from_agent": "A", "to_agent": "B"], error: nil)
        let json = span.exportJSON
        #expect(
            Set(json.objectValue!.keys) == [
                "object", "id", "trace_id", "parent_id", "started_at", "ended_at", "span_data", "error",
            ])
        #expect(json["object"] == "trace.span")
        #expect(json["parent_id"] == .null)
        #expect(json["error"] == .null)
        #expect(json["started_at"] == "1970-01-01T00:00:00.500000+00:00")
        let trace = TraceRecord(id: "trace_x", workflowName: "w", groupId: nil, metadata: ["task_id": "1"])
        #expect(
            trace.exportJSON == [
                "object": "trace", "id": "trace_x", "workflow_name": "w", "group_id": nil,
                "metadata": ["task_id": "1"],
            ])
    }

    @Test func handoffWording() {
        #expect(RunnerMessages.transferMessage(to: "Researcher") == "{\"assistant\": \"Researcher\"}")
        #expect(RunnerMessages.transferMessage(to: "Café \"B\"") == "{\"assistant\": \"Caf\\u00e9 \\\"B\\\"\"}")
        #expect(HandoffSpec.defaultToolName(for: "Content Specialist") == "transfer_to_content_specialist")
    }
}
