import BridgeCore
import BridgeMigrate
import BridgePostgres
import Foundation
import Testing

@testable import BridgeMapping

/// Issue 11's static probes: hostile mapping files are refused with a precise message.
@Suite struct MappingHardeningTests {
    static func shippedWith(_ edit: (String) -> String, file: String = "bridge.yaml") throws -> [(
        file: String, text: String
    )] {
        try MappingFixtures.shippedDocuments().map { $0.file.hasSuffix(file) ? ($0.file, edit($0.text)) : $0 }
    }

    @Test func tableAndColumnNamesMustBeIdentifiers() throws {
        let attack = "tasks ADD COLUMN IF NOT EXISTS zz int; DROP TABLE x; ALTER TABLE tasks"
        let docs = try Self.shippedWith {
            $0.replacingOccurrences(of: "table: tasks\n", with: "table: \"\(attack)\"\n")
        }
        let issues = MappingFixtures.issues(docs)
        let bad = issues.filter { $0.message.contains("is not a valid identifier") }
        #expect(!bad.isEmpty, "\(issues)")
        #expect(bad.allSatisfy { $0.file.hasSuffix("bridge.yaml") && $0.line > 0 })
        #expect(bad.contains { $0.path.hasSuffix("table") })

        let column = try Self.shippedWith {
            $0.replacingOccurrences(of: "result_column: result\n", with: "result_column: \"result\\\" = 1; --\"\n")
        }
        #expect(
            MappingFixtures.issues(column).contains {
                $0.path.hasSuffix("result_column") && $0.message.contains("not a valid identifier")
            })
        // Schema-qualified tables are fine.
        let qualified = try Self.shippedWith {
            $0.replacingOccurrences(of: "table: tasks\n", with: "table: public.tasks\n")
        }
        #expect(MappingFixtures.issues(qualified).allSatisfy { !$0.message.contains("identifier") })
    }

    /// The 643-byte "billion laughs" file: nested anchors under a tool's parameter examples.
    static let laughs: String = {
        var lines = [
            "version: 1", "tools:", "  - name: t", "    description: d", "    parameters:", "      type: object",
            "      properties:", "        x:", "          type: string",
            "          examples: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]",
        ]
        for (i, name) in ["b", "c", "d", "e", "f", "g", "h", "i"].enumerated() {
            let prev = i == 0 ? "a" : ["b", "c", "d", "e", "f", "g", "h", "i"][i - 1]
            lines.append(
                "        \(name): {type: string, examples: &\(name) [\(Array(repeating: "*\(prev)", count: 9).joined(separator: ","))]}"
            )
        }
        return lines.joined(separator: "\n") + "\n"
    }()

    @Test func aliasExpansionIsBounded() {
        #expect(Self.laughs.utf8.count < 1000)
        let issues = MappingFixtures.issues([("laughs.yaml", Self.laughs)])
        #expect(issues.count == 1, "\(issues)")
        #expect(issues.first?.message.contains("aliases expand this file to more than") == true)
        #expect(issues.first?.file == "laughs.yaml" && (issues.first?.line ?? 0) >= 1)
    }

    @Test func fileSizeIsBounded() {
        let big = "version: 1\n# " + String(repeating: "x", count: MappingLoader.maxFileBytes) + "\n"
        let issues = MappingFixtures.issues([("big.yaml", big)])
        #expect(issues.first?.message.contains("limited to \(MappingLoader.maxFileBytes) bytes") == true, "\(issues)")
    }

    @Test func commandEnvNamesAreChecked() throws {
        let doc =
            MappingFixtures.base + """
                agents: [{name: A, instructions: hi, tools: [run]}]
                tools:
                  - name: run
                    description: Run.
                    command: {argv: [/bin/true], env: [GOOD_NAME, "BAD NAME"]}
                """
        let issues = MappingFixtures.issues([("a.yaml", doc)])
        #expect(
            issues.count == 1 && issues[0].message.contains("'BAD NAME' is not an environment variable name"),
            "\(issues)")
    }

    @Test func unknownModelSettingsAreRejectedWithASuggestion() {
        let doc =
            MappingFixtures.base + """
                agents:
                  - name: A
                    instructions: hi
                    model_settings: {temprature: 0.2, top_p: 1, extra_args: {provider_knob: 3}}
                """
        let issues = MappingFixtures.issues([("s.yaml", doc)])
        #expect(issues.count == 1, "\(issues)")
        #expect(issues.first?.message == "unknown key 'temprature' (did you mean 'temperature'?)", "\(issues)")
        #expect(issues.first?.path == "agents[0].model_settings.temprature" && (issues.first?.line ?? 0) > 1)
    }

    @Test func guardrailSQLIsOneStatementToo() {
        let doc =
            MappingFixtures.base + """
                agents: [{name: A, instructions: hi, input_guardrails: [g]}]
                guardrails:
                  - name: g
                    sql: {query: "SELECT false AS tripwire_triggered; UPDATE tasks SET name = 'HACKED'"}
                """
        let issues = MappingFixtures.issues([("g.yaml", doc)])
        #expect(
            issues.contains { $0.message.contains("guardrail 'g' must be exactly one statement") && $0.line > 0 },
            "\(issues)")
    }

    @Test func toolStatementsAreSplitByTheLexer() {
        #expect(ToolStatement.secondStatement(in: "SELECT ';' AS a; -- trailing\n/* more */") == nil)
        #expect(ToolStatement.secondStatement(in: "SELECT $$;$$, \";\"") == nil)
        #expect(ToolStatement.secondStatement(in: "SELECT 1;\n  DELETE FROM t")! == (2, 3))
        #expect(ToolStatement.trimmed("SELECT 1 -- c\n; -- d\n") == "SELECT 1")
        #expect(ToolStatement.writingVerb(in: "WITH x AS (DELETE FROM t RETURNING 1) SELECT * FROM x") == "DELETE")
    }
}

@Suite struct SecretsTests {
    @Test func oneCollectorFindsEveryPassword() throws {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("bridge-home-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: home) }
        try "# comment\nlocalhost:5432:*:bob:pass\\:file\n*:*:*:*:other-pass\n".write(
            to: home.appendingPathComponent(".pgpass"), atomically: true, encoding: .utf8)
        let env = Environment([
            "HOME": home.path, "PGPASSWORD": "env-pass", "OPENAI_API_KEY": "sk-key",
            "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20otlp-token,x=ab",
        ])
        let url = Secrets.collect(
            connection: ConnectionConfig(conninfo: "postgres://bob:url%40pass@h/db"), environment: env)
        for s in ["url@pass", "env-pass", "sk-key", "Bearer otlp-token", "pass:file", "other-pass"] {
            #expect(url.contains(s), "\(s) in \(url)")
        }
        #expect(!url.contains("ab"))
        let kv = Secrets.collect(
            connection: ConnectionConfig(conninfo: "host=h password='kv pass' dbname=d"), environment: Environment([:]))
        #expect(kv == ["kv pass"])
    }

    @Test(arguments: [
        "postgres://u:pw-secret@[::1/db", "postgres://u:pw%zzsecret@h/db", "host=h password=pw-secret 'x",
    ])
    func parseErrorsNeverRepeatTheInput(_ bad: String) {
        let error = #expect(throws: PostgresError.self) { try ConnectionConfig(conninfo: bad).parsedOptions() }
        #expect(
            error?.description.contains("secret") == false && error?.description.contains("cannot be parsed") == true,
            "\(String(describing: error))")
    }

    @Test func redactionCoversJSONAndOverlappingSecrets() {
        let v: JSONValue = ["a": ["key sk-long-secret here", 1], "b": "sk-long"]
        #expect(Redaction.scrub(v, secrets: ["sk-long", "sk-long-secret"]) == ["a": ["key *** here", 1], "b": "***"])
    }
}

@Suite struct PlanCatalogTests {
    /// A column that already exists: without IF NOT EXISTS the add fails; with it, a different
    /// declared type is a conflict (the add is skipped and the column keeps its live type).
    /// Aliases (`timestamptz`, `int8`, `varchar(64)`) are the same type; unknown types are not judged.
    @Test func existingColumnsWithAnotherTypeAreFlagged() throws {
        let catalog = CatalogSnapshot(
            serverVersion: 150000,
            tables: [
                "tasks": .init(
                    qualifiedName: "public.tasks", estimatedRows: 10, totalBytes: 8192,
                    columnTypes: [
                        "id": "uuid", "trace_id": "uuid", "at": "timestamp with time zone", "n": "bigint",
                        "label": "character varying(64)", "tags": "text[]", "kind": "my_enum",
                    ])
            ])
        var linter = Linter(catalog: catalog)
        let file = try MigrationFile(
            fileName: "0902_x.sql",
            text: """
                ALTER TABLE tasks ADD COLUMN IF NOT EXISTS trace_id text;
                ALTER TABLE tasks ADD COLUMN IF NOT EXISTS at timestamptz, ADD COLUMN IF NOT EXISTS n int8 NOT NULL DEFAULT 0;
                ALTER TABLE tasks ADD COLUMN IF NOT EXISTS label varchar(64), ADD COLUMN IF NOT EXISTS tags text[];
                ALTER TABLE tasks ADD COLUMN IF NOT EXISTS kind public.other_enum;
                ALTER TABLE tasks ADD COLUMN IF NOT EXISTS label varchar(32);
                ALTER TABLE tasks ADD COLUMN n bigint;
                """, placeholders: Placeholders())
        let findings = linter.analyze(file).flatMap(\.findings).filter(\.blocks)
        #expect(findings.map(\.rule) == ["type-conflict", "type-conflict", "duplicate-column"], "\(findings)")
        #expect(findings.first?.message.contains("tasks.trace_id already exists as uuid") == true, "\(findings)")
        #expect(findings.first?.message.contains("declares text") == true, "\(findings)")
        #expect(findings.map(\.line) == [1, 5, 6])
    }

    /// `migrate plan` against the live catalog: statements that will fail are errors.
    @Test func missingRelationsAndColumnsAreFlagged() throws {
        let catalog = CatalogSnapshot(
            serverVersion: 150000,
            tables: [
                "tasks": .init(
                    qualifiedName: "public.tasks", estimatedRows: 10, totalBytes: 8192, columns: ["id", "name"])
            ])
        var linter = Linter(catalog: catalog)
        let file = try MigrationFile(
            fileName: "0901_x.sql",
            text: """
                -- bridge:no-transaction
                ALTER TABLE tasks ADD COLUMN IF NOT EXISTS trace text;
                CREATE INDEX CONCURRENTLY IF NOT EXISTS i1 ON tasks (trace, name DESC);
                CREATE INDEX CONCURRENTLY IF NOT EXISTS i2 ON tasks USING btree (nope, lower(name));
                ALTER TABLE task_executions ADD COLUMN x text;
                ALTER TABLE IF EXISTS task_executions ADD COLUMN y text;
                CREATE TABLE fresh (a int);
                CREATE INDEX i3 ON fresh (a);
                """, placeholders: Placeholders())
        let findings = linter.analyze(file).flatMap(\.findings).filter(\.blocks)
        #expect(findings.map(\.rule) == ["missing-column", "missing-relation"], "\(findings)")
        #expect(findings.first?.message.contains("tasks.nope") == true && findings.first?.line == 4)
        #expect(findings.last?.message.contains("task_executions does not exist") == true && findings.last?.line == 5)
    }
}
