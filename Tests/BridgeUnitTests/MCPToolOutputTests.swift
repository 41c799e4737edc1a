import BridgeCore
import Testing

@testable import BridgeRunner

/// MCP results as the model and the function span see them (the SDK's conversion).
@Suite struct MCPToolOutputTests {
    @Test func blocksBecomeTextAndImagePartsAndTheSpanGetsPythonsStr() {
        let result = MCPCallResult(content: [
            ["type": "text", "text": "it's \"quoted\"\n"],
            ["type": "image", "data": "AAAA", "mimeType": "image/jpeg"],
            ["type": "resource", "resource": ["uri": "file:///a.txt", "text": "hi"]],
        ])
        let out = MCPToolOutput.convert(result, useStructuredContent: false)
        #expect(
            out.modelOutput == [
                ["type": "input_text", "text": "it's \"quoted\"\n"],
                ["type": "input_image", "image_url": "data:image/jpeg;base64,AAAA"],
                ["type": "input_text", "text": .string(result.content[2].compact)],
            ])
        #expect(
            out.spanOutput.hasPrefix(
                #"[{'type': 'text', 'text': 'it\'s "quoted"\n'}, {'type': 'image', 'image_url': 'data:image/jpeg;base64,AAAA'}, {'type': 'text', 'text': "#
            ))
    }

    @Test func emptyContentAndStructuredContent() {
        let empty = MCPToolOutput.convert(MCPCallResult(content: []), useStructuredContent: false)
        #expect(empty.modelOutput == "[]" && empty.spanOutput == "[]")
        let structured = MCPCallResult(
            content: [["type": "text", "text": "{\"n\": 1}"]], structuredContent: ["n": 1, "s": "é"])
        #expect(
            MCPToolOutput.convert(structured, useStructuredContent: true).modelOutput == #"{"n": 1, "s": "\u00e9"}"#)
        // Without the option, or for an error result, the content blocks are used.
        #expect(
            MCPToolOutput.convert(structured, useStructuredContent: false).modelOutput == [
                ["type": "input_text", "text": "{\"n\": 1}"]
            ])
        var failed = structured
        failed.isError = true
        #expect(MCPToolOutput.convert(failed, useStructuredContent: true).text == "{\"n\": 1}")
    }

    @Test func schemasAreSentAsGivenAndStrictOnlyWhenTheyAlreadyQualify() {
        let open = MCPTool(
            name: "a", description: "", inputSchema: ["type": "object", "properties": ["x": ["type": "string"]]])
        #expect(MCPToolOutput.functionParameters(open) == (open.inputSchema, false))
        let bare = MCPTool(name: "b", description: "", inputSchema: ["type": "object"])
        #expect(MCPToolOutput.functionParameters(bare).parameters == ["type": "object", "properties": [:]])
        let closed = JSONValue.strictObject(["x": .strictObject(["y": ["type": "integer"]])])
        #expect(MCPToolOutput.functionParameters(MCPTool(name: "c", description: "", inputSchema: closed)).strict)
        // Closed at the top, open inside.
        let nestedOpen = JSONValue.strictObject([
            "x": ["type": "object", "properties": ["y": ["type": "integer"]], "required": ["y"]]
        ])
        #expect(!MCPToolOutput.functionParameters(MCPTool(name: "d", description: "", inputSchema: nestedOpen)).strict)
    }
}
