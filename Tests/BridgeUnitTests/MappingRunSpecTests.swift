import BridgeCore
import BridgeTraceModel
import Foundation
import Testing

@testable import BridgeMapping

@Suite struct MappingRunSpecTests {
    static let ws = "11111111-1111-1111-1111-111111111111"
    static let pm: [String: JSONValue] = [
        "id": "a-pm", "workspace_id": .string(ws), "name": "Project Manager",
        "role": "Project Manager", "system_prompt": "Break work down.",
    ]
    static let rb: [String: JSONValue] = [
        "id": "a-rb", "workspace_id": .string(ws), "name": "ResearchBot",
        "role": "Researcher", "system_prompt": "Research.",
    ]
    static let cw: [String: JSONValue] = [
        "id": "a-cw", "workspace_id": .string(ws), "name": "ContentWriterBot",
        "role": "Content Specialist", "system_prompt": "Write.",
    ]
    static let edges = [
        HandoffEdge(sourceId: "a-pm", targetId: "a-rb", description: "Delegate to Researcher"),
        HandoffEdge(sourceId: "a-pm", targetId: "a-cw", description: "Delegate to Content Specialist"),
    ]

    static func task(agent: JSONValue = "a-pm", role: JSONValue = "Project Manager") -> [String: JSONValue] {
        [
            "id": "t-1", "workspace_id": .string(ws), "agent_id": agent, "assigned_to_role": role, "name": "Task 1",
            "description": "Do it", "context_data": ["project_phase": "ANALYSIS"],
        ]
    }

    func bridge() throws -> DatabaseToSDKBridge {
        DatabaseToSDKBridge(config: try MappingLoader.load(directory: MappingFixtures.shippedDirectory))
    }

    @Test func projectManagerTask() throws {
        let spec = try bridge().runSpec(
            task: Self.task(), agentRows: [Self.pm, Self.rb, Self.cw],
            handoffEdges: Self.edges, attempt: 1)
        #expect(spec.startingAgent == "Project Manager")
        #expect(Set(spec.agents.keys) == ["Project Manager", "Researcher", "Content Specialist"])
        let pm = try #require(spec.agents["Project Manager"])
        #expect(pm.handoffs.map(\.toolName) == ["transfer_to_researcher", "transfer_to_content_specialist"])
        #expect(
            pm.handoffs[0].toolDescription
                == "Handoff to the Researcher agent to handle the request. Researches a topic and reports findings with sources."
        )
        #expect(pm.instructions.hasPrefix("Break work down.\nYou are the Project Manager of workspace \(Self.ws)."))
        #expect(pm.modelSettings == ["temperature": 0.2])
        #expect(spec.agents["Researcher"]?.instructions.hasPrefix("Research.\n") == true)
        #expect(spec.agents["Researcher"]?.handoffs == [])
        #expect(
            Set(spec.tools.keys) == [
                "get_team_roles_and_status", "create_and_assign_sub_task", "store_data", "web_search",
            ])
        #expect(spec.tools["web_search"]?.isFunctionTool == false)
        #expect(spec.input == "Task 1\n\nDo it\n\nPhase: ANALYSIS")
        #expect(spec.traceId == TraceID.forTask("t-1", attempt: 1))
        #expect(spec.traceId.isWellFormed)
        #expect(spec.traceId != TraceID.forTask("t-1", attempt: 2))
        #expect(
            spec.metadata == [
                "task_id": "t-1", "workspace_id": Self.ws, "agent_id": "a-pm", "attempt": "1",
                "bridge_version": "0.1.0",
            ])
        #expect(spec.groupId == Self.ws)
        #expect(spec.maxTurns == 10)
        #expect(spec.workflowName == "bridge exec")
        #expect(spec.traceIncludeSensitiveData)
        // The spec is deterministic.
        let again = try bridge().runSpec(
            task: Self.task(), agentRows: [Self.pm, Self.rb, Self.cw],
            handoffEdges: Self.edges, attempt: 1)
        #expect(again == spec)
    }

    @Test func edgeTableAloneGivesHandoffs() throws {
        var config = try MappingLoader.load(directory: MappingFixtures.shippedDirectory)
        config.agents[0].handoffs = []
        config.agents[1].handoffDescription = nil
        let spec = try DatabaseToSDKBridge(config: config).runSpec(
            task: Self.task(), agentRows: [Self.pm, Self.rb, Self.cw], handoffEdges: Self.edges, attempt: 3)
        let pm = try #require(spec.agents["Project Manager"])
        #expect(pm.handoffs.map(\.agent) == ["Researcher", "Content Specialist"])
        #expect(
            pm.handoffs[0].toolDescription
                == "Handoff to the Researcher agent to handle the request. Delegate to Researcher")
        #expect(spec.metadata["attempt"] == "3")
    }

    @Test func specialistTaskHasOnlyItsAgent() throws {
        let spec = try bridge().runSpec(
            task: Self.task(agent: "a-rb", role: "Researcher"),
            agentRows: [Self.pm, Self.rb, Self.cw], handoffEdges: Self.edges, attempt: 1)
        #expect(spec.startingAgent == "Researcher")
        #expect(Array(spec.agents.keys) == ["Researcher"])
        #expect(Set(spec.tools.keys) == ["web_search", "store_data"])
    }

    @Test func fallbackColumnThenDefaultAgent() throws {
        let b = try bridge()
        let viaRole = try b.runSpec(
            task: Self.task(agent: nil, role: "Content Specialist"),
            agentRows: [Self.pm, Self.rb, Self.cw], handoffEdges: [], attempt: 1)
        #expect(viaRole.startingAgent == "Content Specialist")
        #expect(viaRole.agents["Content Specialist"]?.instructions.hasPrefix("Write.\n") == true)
        #expect(viaRole.metadata["agent_id"] == nil)
        let viaDefault = try b.runSpec(
            task: Self.task(agent: nil, role: "Janitor"), agentRows: [], handoffEdges: [], attempt: 1)
        #expect(viaDefault.startingAgent == "Project Manager")
    }

    @Test func noAgentIsATypedErrorNamingTheTask() throws {
        var config = try MappingLoader.load(directory: MappingFixtures.shippedDirectory)
        config.source.agentSelection?.defaultAgent = nil
        do {
            _ = try DatabaseToSDKBridge(config: config).runSpec(
                task: Self.task(agent: nil, role: "Janitor"),
                agentRows: [], handoffEdges: [], attempt: 1)
            Issue.record("expected an error")
        } catch {
            #expect(error.taskId == "t-1")
            #expect(error.description.hasPrefix("task t-1: no mapped agent"))
            #expect(error.description.contains("assigned_to_role='Janitor'"))
        }
    }

    /// The task key is a `TaskKey` taken from the key column's value as text (a number too); a
    /// spec stores it as the same bare string as before, so stored specs and journals still
    /// decode.
    @Test func theTaskKeyIsTheKeyColumnsTextAndStoresAsAString() throws {
        var task = Self.task()
        task["id"] = 42
        let spec = try bridge().runSpec(
            task: task, agentRows: [Self.pm, Self.rb, Self.cw], handoffEdges: Self.edges, attempt: 2)
        #expect(spec.taskId == TaskKey("42"))
        #expect(spec.traceId == TraceID.forTask("42", attempt: 2))
        let json = try JSONValue.parse(String(decoding: try JSONEncoder().encode(spec), as: UTF8.self))
        #expect(json["task_id"] == "42")
        #expect(try JSONDecoder().decode(RunSpec.self, from: Data(json.compact.utf8)).taskId == "42")
        task["id"] = JSONValue.null
        #expect(throws: RunSpecError.self) {
            try bridge().runSpec(task: task, agentRows: [Self.pm], handoffEdges: [], attempt: 1)
        }
    }
}
