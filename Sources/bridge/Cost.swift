import ArgumentParser
import BridgeCore
import BridgeMonitor
import BridgePostgres
import BridgeVerify
import Foundation

extension Bridge {
    /// `bridge cost`: model spend, from every worker's records in the database.
    struct Cost: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Report model spend by workspace, agent, model or task (from bridge.model_calls).",
            discussion: """
                Every model call bridge makes is recorded with its tokens and its cost from the \
                mappings' `pricing` (migration 0055). Calls of a model without a price are counted \
                as unpriced: their cost is unknown, never zero.

                Exit status: 0 ok; 2 bad flags or connection, or migration 0055 missing.

                Reference: docs/spend.md
                """
        )

        @OptionGroup var connection: ConnectionOptions

        @Option(
            help: ArgumentHelp("Only calls since then: a duration (30m, 24h, 7d) or a timestamp.", valueName: "since"))
        var since: String = "24h"

        @Option(help: ArgumentHelp("Group by workspace, agent, model or task.", valueName: "dimension"))
        var by: String = "model"

        @Flag(help: "Print the report as one JSON object.")
        var json = false

        /// --since as a point in time; throws what is wrong with it.
        func sinceDate() throws -> Date {
            switch Since.parse(since) {
            case .duration(let seconds, _)?: Date().addingTimeInterval(-seconds)
            case .timestamp(let date, _)?: date
            case nil:
                throw ValidationError("--since '\(since)': \(Since.expected)")
            }
        }

        /// --by as a dimension; throws what is wrong with it.
        func dimension() throws -> CostReport.Dimension {
            guard let dimension = CostReport.Dimension(rawValue: by) else {
                throw ValidationError("--by '\(by)': expected one of workspace, agent, model, task")
            }
            return dimension
        }

        func validate() throws {
            _ = try sinceDate()
            _ = try dimension()
        }

        func run() async throws {
            let dimension = try dimension()
            let from = try sinceDate()
            try await runReportingErrors {
                let rows = try await PostgresConnection.withConnection(
                    connection.config(applicationName: "bridge-cost")
                ) { c in
                    guard
                        try await c.query("SELECT to_regclass('bridge.model_calls') IS NOT NULL AS ok").first?["ok"]
                            == "t"
                    else {
                        throw UsageError(
                            "bridge.model_calls does not exist: run `bridge migrate` first (migrations/0055_spend.sql)")
                    }
                    return try await CostReport.read(c, by: dimension, since: from)
                }
                if json {
                    print(CostReport.json(rows, by: dimension, since: since).compact)
                } else {
                    print(CostReport.render(rows, by: dimension), terminator: "")
                }
            }
        }
    }
}
