import BridgeCore
import BridgeMapping
import BridgePostgres
import Foundation
import Testing

@Suite struct MappingTemplateTests {
    @Test func rendersTaskJSONAndAgentReferences() throws {
        let t = try Template(
            parsing:
                "{{task.name}} / {{ task.context_data.project_phase }} / {{agent.system_prompt}} / {{task.context_data.tags.1}} / {{task.missing}}|{{task.n}}"
        )
        let task: [String: JSONValue] = [
            "name": "Write", "context_data": ["project_phase": "ANALYSIS", "tags": ["a", "b"]],
            "n": 3,
        ]
        #expect(t.render(task: task, agent: ["system_prompt": "Be brief."]) == "Write / ANALYSIS / Be brief. / b / |3")
        #expect(t.render(task: task) == "Write / ANALYSIS /  / b / |3")
        #expect(t.columns(root: "task") == ["name", "context_data", "missing", "n"])
        #expect(t.columns(root: "agent") == ["system_prompt"])
    }

    @Test func jsonStoredAsTextIsFollowed() throws {
        let t = try Template(parsing: "{{task.ctx.k}}")
        #expect(t.render(task: ["ctx": .string("{\"k\": {\"x\": 1}}")]) == "{\"x\":1}")
    }

    @Test func rejectsBadReferences() {
        #expect(throws: TemplateError.self) { try Template(parsing: "{{foo.bar}}") }
        #expect(throws: TemplateError.self) { try Template(parsing: "{{task}}") }
        #expect(throws: TemplateError.self) { try Template(parsing: "{{task.}}") }
        #expect(throws: TemplateError.self) { try Template(parsing: "{{task.name") }
        #expect(throws: TemplateError.self) { try Template(parsing: "{{}}") }
        #expect((try? Template(parsing: "no placeholders { } }}")) != nil)
    }
}

@Suite struct MappingSQLCompileTests {
    @Test func namedParametersBecomeBinds() throws {
        let spec = SQLToolSpec(sql: "SELECT * FROM t WHERE a = :a AND w = :task.workspace_id AND b = :a AND c = :flag")
        let q = try spec.compile(arguments: ["a": "x", "flag": true], task: ["workspace_id": "w1"])
        #expect(q.sql == "SELECT * FROM t WHERE a = $1 AND w = $2 AND b = $1 AND c = $3")
        #expect(q.binds == [.text("x"), .text("w1"), .text("true")])
    }

    @Test func skipsCastsLiteralsIdentifiersCommentsAndDollarQuotes() throws {
        let sql = """
            SELECT :x::int, ':no', E'it\\'s :no', "col:no", $$ :no $$, $tag$ :no $tag$ -- :no
            , /* :no /* nested :no */ */ arr[1:2], :y
            """
        let q = try SQLToolSpec(sql: sql).compile(arguments: ["x": 5, "y": .null], task: [:])
        #expect(
            q.sql == """
                SELECT $1::int, ':no', E'it\\'s :no', "col:no", $$ :no $$, $tag$ :no $tag$ -- :no
                , /* :no /* nested :no */ */ arr[1:2], $2
                """)
        #expect(q.binds == [.text("5"), .null])
        #expect(SQLNamedParameters(scanning: sql).argumentNames == ["x", "y"])
    }

    @Test func objectsAndArraysBindAsCompactJSON() throws {
        let q = try SQLToolSpec(sql: "SELECT :o::jsonb, :a::jsonb, :n, :f").compile(
            arguments: ["o": ["b": 1, "a": [true, nil]], "a": [1, "two"], "n": 42, "f": 1.5], task: [:])
        #expect(q.binds == [.text("{\"a\":[true,null],\"b\":1}"), .text("[1,\"two\"]"), .text("42"), .text("1.5")])
    }

    @Test func missingArgumentsAndTaskColumnsThrow() {
        #expect(throws: SQLCompileError.self) { try SQLToolSpec(sql: "SELECT :a").compile(arguments: [:], task: [:]) }
        #expect(throws: SQLCompileError.self) {
            try SQLToolSpec(sql: "SELECT :task.id").compile(arguments: [:], task: ["name": "x"])
        }
        // A task column that is present but NULL binds as NULL.
        #expect(
            (try? SQLToolSpec(sql: "SELECT :task.agent_id").compile(arguments: [:], task: ["agent_id": .null]))?.binds
                == [.null])
    }

    @Test func positionalSQLNumbersEachNameOnce() {
        let (sql, params) = SQLToolSpec(sql: "SELECT :a, :task.id, :a").positionalSQL()
        #expect(sql == "SELECT $1, $2, $1")
        #expect(params == [["a"], ["task", "id"]])
    }
}

@Suite struct ExactJSONNumberTests {
    @Test func integersBeyondDoublePrecisionRoundTrip() throws {
        for text in [
            "9007199254740993", "-9223372036854775808", "9223372036854775807", "123456789012345678901234567890",
        ] {
            let v = try JSONValue.parse(text)
            #expect(v.compact == text)
        }
        #expect(try JSONValue.parse("9007199254740993").int64Value == 9_007_199_254_740_993)
        #expect(try JSONValue.parse("123456789012345678901234567890").int64Value == nil)
        #expect(try JSONValue.parse("123456789012345678901234567890").numberValue?.isInteger == true)
    }

    @Test func decimalsKeepTheirDigits() throws {
        #expect(try JSONValue.parse("12345678901234567890.123456789").compact == "12345678901234567890.123456789")
        #expect(try JSONValue.parse("0.1").compact == "0.1")
        #expect(try JSONValue.parse("2.5e-7").doubleValue == 2.5e-7)
        #expect(try JSONValue.parse("1.0") == JSONValue.number(1))
        #expect(try JSONValue.parse("[1,2.25]") == [1, 2.25])
        #expect(try JSONValue.parse("-0").compact == "0")
    }

    @Test func codableKeepsExactIntegers() throws {
        let v: JSONValue = ["id": .integer(Int64(9_007_199_254_740_993))]
        let data = try JSONEncoder().encode(v)
        #expect(String(decoding: data, as: UTF8.self) == #"{"id":9007199254740993}"#)
        #expect(try JSONDecoder().decode(JSONValue.self, from: data) == v)
    }

    @Test func bindsAndTemplatesUseTheExactText() throws {
        let row = try JSONValue.parse(#"{"id": 9007199254740993, "amount": 12345678901234567890.5}"#)
        #expect(row["id"]?.templateText == "9007199254740993")
        #expect(SQLToolSpec.bindValue(row["amount"]!) == .text("12345678901234567890.5"))
    }
}

@Suite struct ColumnTypesCastTests {
    let types = ColumnTypes(types: ["tasks": ["id": "uuid"]])

    @Test func aKnownColumnTypesTheValueSide() {
        #expect(types.cast("tasks", "id").sql == "::uuid")
        #expect(types.arrayCast("tasks", "id").sql == "::uuid[]")
        #expect(types.unnestCast("tasks", "id").sql == "::uuid[]")
    }

    /// Unknown: a comparison leaves the type to PostgreSQL (no cast); an unnested array, which
    /// PostgreSQL cannot type from context, is text.
    @Test func anUnknownColumnIsInferredOrText() {
        #expect(types.cast("tasks", "status").sql == "")
        #expect(types.arrayCast("logs", "task_id").sql == "")
        #expect(types.unnestCast("logs", "task_id").sql == "::text[]")
    }
}
