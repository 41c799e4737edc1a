import BridgeCore
import Foundation
import Testing

@testable import BridgeMigrate

@Suite struct SQLSplitterTests {
    @Test func splitsWithLineNumbers() throws {
        let sql = "CREATE TABLE a (x int);\n\n-- note; not a statement\nINSERT INTO a VALUES (1);\nSELECT 1"
        let s = try SQLSplitter.split(sql)
        #expect(s.map(\.line) == [1, 4, 5])
        #expect(s.map(\.text) == ["CREATE TABLE a (x int)", "INSERT INTO a VALUES (1)", "SELECT 1"])
        #expect(s[1].comments.map(\.text) == ["-- note; not a statement"])
    }

    @Test func dollarQuotesContainingSemicolons() throws {
        let sql = """
            CREATE FUNCTION f() RETURNS trigger AS $$
            BEGIN
                NEW.x = 1; -- inside
                RETURN NEW;
            END;
            $$ LANGUAGE plpgsql;
            DO $body$ BEGIN PERFORM 1; PERFORM $$;$$; END $body$;
            SELECT $1, a$b FROM t;
            """
        let s = try SQLSplitter.split(sql)
        #expect(s.count == 3)
        #expect(s[0].text.hasSuffix("LANGUAGE plpgsql"))
        #expect(s[1].line == 7)
        #expect(s[1].text == "DO $body$ BEGIN PERFORM 1; PERFORM $$;$$; END $body$")
        #expect(s[2].line == 8)
    }

    @Test func escapeStringsAndStandardStrings() throws {
        let sql = #"INSERT INTO t VALUES (E'it\'s; ok', 'a''b;c', 'back\'); SELECT 2;"#
        let s = try SQLSplitter.split(sql)
        #expect(s.count == 2)
        #expect(s[0].text == #"INSERT INTO t VALUES (E'it\'s; ok', 'a''b;c', 'back\')"#)
        #expect(s[1].text == "SELECT 2")
    }

    @Test func commentsAndQuotedIdentifiers() throws {
        let sql = "/* outer /* nested; */ still; */ SELECT \"semi;colon\" FROM \"we\"\"ird\"; -- trailing;\n"
        let s = try SQLSplitter.split(sql)
        #expect(s.count == 1)
        #expect(s[0].tokens.filter { $0.kind == .quotedIdentifier }.map(\.text) == ["semi;colon", "we\"ird"])
    }

    @Test func multiLineStringsCountLines() throws {
        let s = try SQLSplitter.split("SELECT 'a\nb\nc';\nSELECT 2;")
        #expect(s.map(\.line) == [1, 4])
    }

    @Test func unterminatedConstructsAreErrors() {
        #expect(throws: SQLLexError.self) { try SQLSplitter.split("SELECT 'oops") }
        #expect(throws: SQLLexError.self) { try SQLSplitter.split("SELECT $$ never closed") }
        #expect(throws: SQLLexError.self) { try SQLSplitter.split("/* /* */ SELECT 1") }
    }

    @Test func detectsNonTransactionalStatements() throws {
        let s = try SQLSplitter.split(
            """
            CREATE INDEX CONCURRENTLY i ON t (x);
            create unique index concurrently if not exists j on t (y);
            DROP INDEX CONCURRENTLY i;
            REINDEX TABLE CONCURRENTLY t;
            VACUUM ANALYZE t;
            ALTER SYSTEM SET work_mem = '8MB';
            CREATE DATABASE d;
            CREATE INDEX i2 ON t (x);
            ALTER TYPE mood ADD VALUE 'meh';
            SELECT 'CREATE INDEX CONCURRENTLY';
            """)
        #expect(
            s.map { $0.nonTransactionalReason != nil } == [
                true, true, true, true, true, true, true, false, false, false,
            ])
    }

    @Test func noTransactionDirectiveOnlyAtTop() {
        #expect(SQLSplitter.hasNoTransactionDirective("-- header\n-- bridge:no-transaction\nSELECT 1;"))
        #expect(!SQLSplitter.hasNoTransactionDirective("SELECT 1;\n-- bridge:no-transaction\n"))
    }
}

@Suite struct MigrationFileTests {
    @Test func fileNames() throws {
        #expect(try MigrationFile.parseName("0001_init.sql")?.version == 1)
        #expect(try MigrationFile.parseName("0042_add-thing_2.sql")?.name == "add-thing_2")
        #expect(try MigrationFile.parseName("README.md") == nil)
        #expect(throws: MigrateError.self) { try MigrationFile.parseName("init.sql") }
        #expect(throws: MigrateError.self) { try MigrationFile.parseName("01a_x.sql") }
        #expect(throws: MigrateError.self) { try MigrationFile.parseName("0001_.sql") }
    }

    @Test func checksumNormalisesLineEndings() {
        let lf = MigrationFile.checksum("SELECT 1;\nSELECT 2;\n")
        #expect(MigrationFile.checksum("SELECT 1;\r\nSELECT 2;\r\n") == lf)
        #expect(MigrationFile.checksum("SELECT 1;\rSELECT 2;\r") == lf)
        #expect(MigrationFile.checksum("SELECT 1; \nSELECT 2;\n") != lf)
        #expect(lf == SHA256.hex("SELECT 1;\nSELECT 2;\n"))
    }

    @Test func placeholdersFillFromDefaultsAndOverrides() throws {
        let f = try MigrationFile(
            fileName: "0002_x.sql", text: "ALTER TABLE ${tasks_table} ADD COLUMN c text;\nSELECT '${' ;",
            placeholders: Placeholders(overrides: ["tasks_table": "app.jobs"]))
        #expect(f.statements[0].text == "ALTER TABLE \"app\".\"jobs\" ADD COLUMN c text")
        let d = try MigrationFile(
            fileName: "0002_x.sql", text: "ALTER TABLE ${tasks_table} ADD c text;", placeholders: Placeholders())
        #expect(d.statements[0].text == "ALTER TABLE \"tasks\" ADD c text")
    }

    static let placeholderText = "ALTER TABLE ${tasks_table} ADD COLUMN IF NOT EXISTS openai_trace_id text;"

    /// Issue 11: a table name pasted into a migration must never become SQL.
    @Test(arguments: [
        "tasks ADD COLUMN IF NOT EXISTS zz int; DROP TABLE x; ALTER TABLE tasks", "tasks\"; DROP TABLE x; --",
        "a.b.c", "", "1tasks", String(repeating: "t", count: 64),
    ])
    func placeholderValuesThatAreNotOneIdentifierAreRefused(_ bad: String) {
        #expect(throws: MigrateError.self) {
            try MigrationFile(
                fileName: "0002_x.sql", text: Self.placeholderText,
                placeholders: Placeholders(overrides: ["tasks_table": bad]))
        }
    }

    @Test func placeholderValuesAreIdentifiersAndAlwaysQuoted() throws {
        let text = Self.placeholderText
        let ok = try MigrationFile(
            fileName: "0002_x.sql", text: text, placeholders: Placeholders(overrides: ["tasks_table": "Übung_$1"]))
        #expect(ok.statements[0].text.hasPrefix("ALTER TABLE \"Übung_$1\" "))
    }

    @Test func unknownPlaceholderNamesFileAndLine() {
        do {
            _ = try MigrationFile(
                fileName: "0003_y.sql", text: "SELECT 1;\n\nSELECT ${nope};", placeholders: Placeholders())
            Issue.record("expected an error")
        } catch {
            #expect(
                error
                    == .unknownPlaceholder(
                        file: "0003_y.sql", line: 3, name: "nope",
                        known: [
                            "executions_completed_at_column", "executions_started_at_column", "executions_table",
                            "tasks_created_at_column", "tasks_group_column", "tasks_key",
                            "tasks_priority_column", "tasks_status_column", "tasks_table",
                        ]))
            #expect(error.exitStatus == .badInput)
            #expect(error.description.contains("0003_y.sql:3"))
        }
    }

    @Test func setAssignments() throws {
        #expect(
            try Placeholders.parseAssignments(["a=b=c", "tasks_table=jobs"]) == ["a": "b=c", "tasks_table": "jobs"])
        #expect(throws: MigrateError.self) { try Placeholders.parseAssignments(["novalue"]) }
        #expect(throws: MigrateError.self) { try Placeholders.parseAssignments(["bad name=x"]) }
    }

    @Test func transactionModes() throws {
        let directive = try MigrationFile(
            fileName: "0001_a.sql", text: "-- bridge:no-transaction\nSELECT 1;", placeholders: Placeholders())
        #expect(directive.runsWithoutTransaction)
        let auto = try MigrationFile(
            fileName: "0001_a.sql", text: "CREATE INDEX CONCURRENTLY i ON t (x);", placeholders: Placeholders())
        #expect(auto.runsWithoutTransaction)
        let mixed = try MigrationFile(
            fileName: "0001_a.sql", text: "SELECT 1;\nCREATE INDEX CONCURRENTLY i ON t (x);",
            placeholders: Placeholders())
        #expect(!mixed.runsWithoutTransaction)
        #expect(mixed.noTransactionReason == "line 2: CREATE INDEX CONCURRENTLY")
    }

    @Test func durations() throws {
        #expect(try MigrateOptions.parseDuration("3s") == 3000)
        #expect(try MigrateOptions.parseDuration("500ms") == 500)
        #expect(try MigrateOptions.parseDuration("1min") == 60_000)
        #expect(try MigrateOptions.parseDuration("2") == 2000)
        #expect(throws: MigrateError.self) { try MigrateOptions.parseDuration("soon") }
    }

    @Test func poolerPortDetection() {
        #expect(
            Migrator.port(of: "postgres://u:p@db.pooler.supabase.com:6543/postgres", environment: Environment([:]))
                == 6543)
        #expect(Migrator.port(of: "host=db port=6543 user=x", environment: Environment([:])) == 6543)
        #expect(Migrator.port(of: "", environment: Environment(["PGPORT": "5433"])) == 5433)
        #expect(Migrator.port(of: "postgres://db/app", environment: Environment([:])) == nil)
    }

    @Test func indexNameForInvalidIndexCleanup() throws {
        let s = try SQLSplitter.split("CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_a ON app.tasks (x)")[0]
        #expect(Migrator.indexName(s)?.key == "app.idx_a")
        let t = try SQLSplitter.split("CREATE INDEX CONCURRENTLY ON tasks (x)")[0]
        #expect(Migrator.indexName(t) == nil)
    }
}

@Suite struct LintTests {
    static let catalog = CatalogSnapshot(
        serverVersion: 150_000,
        tables: [
            "tasks": .init(qualifiedName: "public.tasks", estimatedRows: 1_000_000, totalBytes: 500_000_000),
            "agents": .init(qualifiedName: "public.agents", estimatedRows: 10, totalBytes: 8192),
        ])

    func lint(_ sql: String, catalog: CatalogSnapshot = LintTests.catalog) throws -> [StatementAnalysis] {
        var linter = Linter(catalog: catalog)
        return linter.analyze(try MigrationFile(fileName: "0001_t.sql", text: sql, placeholders: Placeholders()))
    }

    func rules(_ sql: String) throws -> [String] {
        try lint(sql).flatMap(\.findings).filter(\.blocks).map(\.rule)
    }

    @Test func addColumnDefaults() throws {
        let a = try lint(
            "ALTER TABLE tasks ADD COLUMN a text;\nALTER TABLE tasks ADD COLUMN b int NOT NULL DEFAULT 0;\nALTER TABLE tasks ADD COLUMN c timestamptz DEFAULT now();\nALTER TABLE tasks ADD COLUMN d uuid DEFAULT gen_random_uuid();"
        )
        #expect(a.map(\.effect) == [.metadataOnly, .metadataOnly, .metadataOnly, .rewrite])
        #expect(a[3].findings.map(\.rule) == ["volatile-default"])
        #expect(a[3].findings[0].line == 4)
        let old = try lint(
            "ALTER TABLE tasks ADD COLUMN b int DEFAULT 0;",
            catalog: CatalogSnapshot(serverVersion: 100_000, tables: Self.catalog.tables))
        #expect(old[0].effect == .rewrite)
    }

    @Test func indexesOnExistingAndNewTables() throws {
        #expect(try rules("CREATE INDEX i ON tasks (status);") == ["index-not-concurrent"])
        #expect(try rules("CREATE INDEX CONCURRENTLY i ON tasks (status);") == [])
        #expect(try rules("CREATE TABLE bridge.x (id int);\nCREATE INDEX i ON bridge.x (id);") == [])
        let a = try lint("CREATE INDEX CONCURRENTLY i ON tasks (status);")
        #expect(a[0].effect == .concurrent)
        #expect(a[0].notes.contains { $0.contains("public.tasks (~1000000 rows") })
    }

    @Test func constraints() throws {
        #expect(
            try rules("ALTER TABLE tasks ADD CONSTRAINT fk FOREIGN KEY (agent_id) REFERENCES agents (id);") == [
                "fk-not-valid"
            ])
        #expect(
            try rules("ALTER TABLE tasks ADD CONSTRAINT fk FOREIGN KEY (agent_id) REFERENCES agents (id) NOT VALID;")
                == [])
        #expect(try rules("ALTER TABLE tasks VALIDATE CONSTRAINT fk;") == [])
        #expect(try rules("ALTER TABLE tasks ADD CONSTRAINT c CHECK (x > 0);") == ["constraint-not-valid"])
        #expect(try rules("ALTER TABLE tasks ADD CONSTRAINT u UNIQUE (name);") == ["unique-not-using-index"])
        #expect(try rules("ALTER TABLE tasks ADD CONSTRAINT u UNIQUE USING INDEX u_idx;") == [])
        #expect(try rules("ALTER TABLE tasks ADD COLUMN a uuid REFERENCES agents (id);") == ["fk-not-valid"])
    }

    @Test func scansAndRewrites() throws {
        let a = try lint(
            "ALTER TABLE tasks ALTER COLUMN name SET NOT NULL;\nALTER TABLE tasks ALTER COLUMN priority TYPE varchar(10);\nALTER TABLE tasks ALTER COLUMN name SET DEFAULT 'x';"
        )
        #expect(a.map(\.effect) == [.scan, .rewrite, .metadataOnly])
        #expect(a.flatMap(\.findings).map(\.rule) == ["set-not-null", "alter-column-type"])
    }

    @Test func lintIgnoreWithReason() throws {
        let a = try lint(
            "-- bridge:lint-ignore index-not-concurrent table is tiny and offline\nCREATE INDEX i ON tasks (status);")
        #expect(a[0].findings.count == 1)
        #expect(a[0].findings[0].ignoredBecause == "table is tiny and offline")
        #expect(!a[0].findings[0].blocks)
    }

    @Test func fileLevelRules() throws {
        #expect(try rules("SELECT 1;\nCREATE INDEX CONCURRENTLY i ON tasks (x);") == ["mixed-transaction"])
        #expect(try rules("BEGIN;\nSELECT 1;\nCOMMIT;") == ["explicit-transaction", "explicit-transaction"])
    }

    @Test func shippedMigrationsPassLint() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("migrations").path
        let files = try MigrationFile.load(directory: dir, placeholders: Placeholders())
        #expect(Array(files.map(\.version).prefix(3)) == [1, 2, 3])
        var catalog = Self.catalog
        catalog.tables["task_executions"] = .init(
            qualifiedName: "public.task_executions", estimatedRows: 10, totalBytes: 1)
        var linter = Linter(catalog: catalog)
        let findings = files.flatMap { linter.analyze($0) }.flatMap(\.findings)
        #expect(findings.isEmpty, "\(findings)")
        #expect(files[2].runsWithoutTransaction)
        #expect(!files[0].runsWithoutTransaction && !files[1].runsWithoutTransaction)
    }
}

@Suite struct LockTimeoutEscalationTests {
    @Test func doublesFromTheStartUpToTheCeiling() {
        #expect(
            (0..<8).map { Migrator.lockTimeout(attempt: $0, initial: 50, ceiling: 3000) }
                == [50, 100, 200, 400, 800, 1600, 3000, 3000])
        // A ceiling at or below the start disables escalation.
        #expect(Migrator.lockTimeout(attempt: 0, initial: 50, ceiling: 20) == 20)
        #expect(Migrator.lockTimeout(attempt: 3, initial: 0, ceiling: 3000) == 3000)
    }
}
