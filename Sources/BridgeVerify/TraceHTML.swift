import BridgeCore
import BridgePostgres
import BridgeTraceModel
import FoundationEssentials

/// The HTML view: one self-contained page (inline CSS and JavaScript, no external assets) with
/// a Gantt-style timeline: one bar per span, nested by parent, coloured by span type; clicking
/// a row shows the span's details. Opening `page.html#span_…` selects that span. A durable
/// run's `resume` span is drawn as the gap it is (hatched), with the workers and the lost time
/// in its row, its details and the page header.
public enum TraceHTML {
    public static func render(_ doc: TraceDocument) -> String {
        let origin = doc.origin
        let total = max(doc.end.timeIntervalSince(origin) * 1000, 0.001)
        let spans: [JSONValue] = doc.ordered.map { entry in
            let s = entry.span
            let resume = SpanLabel.isResume(s)
            return [
                "id": s.id.json, "parent_id": s.parentId?.json ?? .null,
                "depth": .number(Double(entry.depth)), "kind": .string(resume ? "resume" : SpanLabel.kind(s)),
                "type": .string(s.type), "resume": resume ? s.spanData["data"] ?? [:] : .null,
                "label": .string(SpanLabel.line(s, argLimit: 48)),
                "start_ms": .number(s.startedAt.timeIntervalSince(origin) * 1000),
                "dur_ms": .number(s.endedAt.timeIntervalSince(s.startedAt) * 1000),
                "started_at": .string(SDKTime.iso(s.startedAt)), "ended_at": .string(SDKTime.iso(s.endedAt)),
                "span_data": s.spanData, "error": s.error ?? .null,
            ]
        }
        let t = doc.trace
        let data: JSONValue = [
            "trace": [
                "id": t.id.json, "workflow_name": .string(t.workflowName),
                "group_id": t.groupId.map(JSONValue.string) ?? .null,
                "task_id": doc.taskId?.json ?? .null,
                "metadata": t.metadataJSON,
                "started_at": .string(SDKTime.iso(origin)), "total_ms": .number(total),
                "agents": .array(doc.agents.map(JSONValue.string)),
                "other_attempts": .array(doc.otherAttempts.map(\.json)),
            ],
            "spans": .array(spans),
        ]
        // Inside <script>, "</" would end the element early; JSON allows escaping the slash.
        let json = data.compact.replacingOccurrences(of: "</", with: "<\\/")
        let title = ReportRenderer.xml("trace \(t.id) · \(t.workflowName)")
        return page.replacingOccurrences(of: "{{TITLE}}", with: title).replacingOccurrences(of: "{{DATA}}", with: json)
    }

    static let page = #"""
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>{{TITLE}}</title>
        <style>
          :root { --label: 430px; --row: 24px; --bg: #f8fafc; --line: #e2e8f0; --text: #0f172a; --muted: #64748b; }
          * { box-sizing: border-box; }
          body { margin: 0; font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--text); background: var(--bg); }
          header { padding: 14px 20px 10px; background: #fff; border-bottom: 1px solid var(--line); }
          h1 { font-size: 16px; margin: 0 0 4px; font-weight: 600; }
          h1 code { font-size: 14px; background: #f1f5f9; padding: 1px 6px; border-radius: 4px; }
          .meta { color: var(--muted); display: flex; flex-wrap: wrap; gap: 4px 18px; }
          .meta b { color: var(--text); font-weight: 600; }
          .legend { display: flex; flex-wrap: wrap; gap: 4px 14px; margin-top: 8px; color: var(--muted); }
          .legend span::before { content: ""; display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 5px; vertical-align: -1px; background: var(--c); }
          main { display: flex; height: calc(100vh - 96px); min-height: 300px; }
          #timeline { flex: 1; overflow: auto; background: #fff; }
          #details { width: 400px; border-left: 1px solid var(--line); overflow: auto; padding: 12px 16px; background: var(--bg); }
          .axis, .row { display: grid; grid-template-columns: var(--label) 1fr; }
          .axis { position: sticky; top: 0; z-index: 2; background: #fff; border-bottom: 1px solid var(--line); height: 26px; }
          .axis .ticks, .row .track { position: relative; margin-right: 16px; }
          .tick { position: absolute; top: 0; bottom: 0; border-left: 1px solid var(--line); color: var(--muted); font-size: 11px; padding: 5px 0 0 4px; white-space: nowrap; }
          .axis .lbl { padding: 5px 12px; color: var(--muted); font-size: 11px; text-transform: uppercase; letter-spacing: .04em; }
          .row { height: var(--row); cursor: pointer; border-bottom: 1px solid #f1f5f9; }
          .row:hover { background: #f8fafc; }
          .row.sel { background: #eef2ff; }
          .row .name { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; padding: 3px 8px 0 0; }
          .row .name .caret { display: inline-block; width: 14px; color: var(--muted); text-align: center; }
          .row .name .k { font-size: 10px; text-transform: uppercase; letter-spacing: .04em; color: #fff; background: var(--c); border-radius: 3px; padding: 0 4px; margin-right: 5px; }
          .row.err .name { color: #b91c1c; }
          .bar { position: absolute; top: 5px; height: 14px; min-width: 3px; border-radius: 3px; background: var(--c); }
          .row.gap .bar { background: repeating-linear-gradient(135deg, #f97316 0 5px, #fed7aa 5px 10px); outline: 1px dashed #ea580c; }
          .row.gap .name { color: #c2410c; font-weight: 600; }
          .row.err .bar { background: repeating-linear-gradient(135deg, var(--c) 0 6px, #dc2626 6px 9px); outline: 1px solid #dc2626; }
          .dur { position: absolute; top: 3px; font-size: 11px; color: var(--muted); white-space: nowrap; }
          .gridline { position: absolute; top: 0; bottom: 0; border-left: 1px dashed #f1f5f9; }
          #details h2 { font-size: 14px; margin: 0 0 8px; overflow-wrap: anywhere; }
          #details h3 { font-size: 12px; margin: 12px 0 6px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
          .dur.in { color: #fff; font-weight: 600; }
          #details table { border-collapse: collapse; width: 100%; margin-bottom: 10px; }
          #details td { padding: 2px 0; vertical-align: top; }
          #details td:first-child { color: var(--muted); width: 92px; }
          #details pre { background: #0f172a; color: #e2e8f0; padding: 10px; border-radius: 6px; white-space: pre-wrap; word-break: break-word; font-size: 12px; }
          #details .error { background: #fef2f2; color: #991b1b; border: 1px solid #fecaca; padding: 8px; border-radius: 6px; margin-bottom: 10px; }
          .hint { color: var(--muted); }
        </style>
        </head>
        <body>
        <header>
          <h1 id="title"></h1>
          <div class="meta" id="meta"></div>
          <div class="legend" id="legend"></div>
        </header>
        <main>
          <section id="timeline"></section>
          <aside id="details"><p class="hint">Click a span for its details.</p></aside>
        </main>
        <script id="trace-data" type="application/json">{{DATA}}</script>
        <script>
        (function () {
          "use strict";
          var data = JSON.parse(document.getElementById("trace-data").textContent);
          var T = data.trace, spans = data.spans;
          var colors = { task: "#475569", agent: "#6366f1", turn: "#94a3b8", generation: "#10b981", response: "#14b8a6",
                         "function": "#f59e0b", handoff: "#ec4899", guardrail: "#8b5cf6", custom: "#a8a29e",
                         resume: "#f97316" };
          function color(k) { return colors[k] || "#a8a29e"; }
          function el(tag, cls, text) { var e = document.createElement(tag); if (cls) e.className = cls; if (text != null) e.textContent = text; return e; }
          function fmt(ms) {
            if (ms >= 10000) return (ms / 1000).toFixed(1) + " s";
            if (ms >= 1000) return (ms / 1000).toFixed(2) + " s";
            if (ms >= 10) return ms.toFixed(1) + " ms";
            return ms.toFixed(2) + " ms";
          }
          var total = T.total_ms;

          document.getElementById("title").innerHTML = "";
          var h = document.getElementById("title");
          h.appendChild(document.createTextNode((T.workflow_name || "trace") + " "));
          h.appendChild(el("code", null, T.id));
          var meta = document.getElementById("meta");
          function m(k, v) { if (v == null || v === "") return; var s = el("span"); s.appendChild(document.createTextNode(k + " ")); s.appendChild(el("b", null, v)); meta.appendChild(s); }
          var counts = {}; var errors = 0;
          spans.forEach(function (s) { counts[s.kind] = (counts[s.kind] || 0) + 1; if (s.error) errors++; });
          m("task", T.task_id); m("workspace", (T.metadata && T.metadata.workspace_id) || T.group_id);
          m("session", T.metadata && T.metadata.session_id); m("attempt", T.metadata && T.metadata.attempt);
          m("started", T.started_at); m("duration", fmt(total)); m("spans", String(spans.length));
          m("tool calls", String(counts["function"] || 0)); m("handoffs", String(counts.handoff || 0));
          m("errors", String(errors)); if (T.agents.length) m("agents", T.agents.join(" → "));
          if (T.other_attempts.length) m("other attempts", T.other_attempts.join(", "));
          var resumes = spans.filter(function (s) { return s.kind === "resume"; });
          if (resumes.length) {
            var lost = resumes.reduce(function (a, s) { return a + (s.resume.lost_seconds || 0); }, 0);
            m("resumed", resumes.length + "× · lost " + fmt(lost * 1000) + " · workers " +
              resumes.map(function (s) { return (s.resume.previous_worker || "?") + " → " + (s.resume.worker || "?"); }).join(", "));
          }

          var legend = document.getElementById("legend");
          Object.keys(counts).sort().forEach(function (k) { var s = el("span", null, k + " (" + counts[k] + ")"); s.style.setProperty("--c", color(k)); legend.appendChild(s); });

          var tl = document.getElementById("timeline");
          var axis = el("div", "axis"); axis.appendChild(el("div", "lbl", "span"));
          var ticks = el("div", "ticks"); axis.appendChild(ticks); tl.appendChild(axis);
          var step = Math.pow(10, Math.floor(Math.log10(total / 5 || 1)));
          if (total / step > 10) step *= 2; if (total / step > 10) step *= 2.5;
          var tickAt = [];
          for (var t = 0; t <= total + 1e-9; t += step) tickAt.push(t);
          tickAt.forEach(function (t) {
            if (t / total > 0.93 && t > 0) return;  // no room for the label at the right edge
            var d = el("div", "tick", fmt(t)); d.style.left = (t / total * 100) + "%"; ticks.appendChild(d);
          });

          var byId = {}, children = {}, rows = {};
          spans.forEach(function (s) { byId[s.id] = s; if (s.parent_id) (children[s.parent_id] = children[s.parent_id] || []).push(s.id); });
          var collapsed = {};
          spans.forEach(function (s) {
            var row = el("div", "row" + (s.error ? " err" : "") + (s.kind === "resume" ? " gap" : ""));
            row.style.setProperty("--c", color(s.kind));
            row.dataset.id = s.id;
            var name = el("div", "name"); name.style.paddingLeft = (10 + s.depth * 16) + "px";
            var caret = el("span", "caret", children[s.id] ? "▾" : ""); name.appendChild(caret);
            name.appendChild(el("span", "k", s.kind));
            name.appendChild(document.createTextNode(s.label.replace(/^\S+ /, "")));
            name.title = s.label;
            row.appendChild(name);
            var track = el("div", "track");
            tickAt.forEach(function (t) { var g = el("div", "gridline"); g.style.left = (t / total * 100) + "%"; track.appendChild(g); });
            var left = s.start_ms / total * 100, width = Math.max(s.dur_ms / total * 100, 0.15);
            var bar = el("div", "bar"); bar.style.left = left + "%"; bar.style.width = width + "%"; track.appendChild(bar);
            var dur = el("div", "dur", fmt(s.dur_ms));
            if (left + width <= 88) { dur.style.left = (left + width + 0.5) + "%"; }
            else if (width >= 12) { dur.className = "dur in"; dur.style.right = (100 - left - width + 0.5) + "%"; }
            else { dur.style.right = (100 - left + 0.5) + "%"; }
            track.appendChild(dur);
            row.appendChild(track);
            caret.addEventListener("click", function (ev) { ev.stopPropagation(); toggle(s.id); });
            row.addEventListener("click", function () { select(s.id); });
            rows[s.id] = row; tl.appendChild(row);
          });

          function descendants(id, out) { (children[id] || []).forEach(function (c) { out.push(c); descendants(c, out); }); return out; }
          function toggle(id) {
            collapsed[id] = !collapsed[id];
            rows[id].querySelector(".caret").textContent = collapsed[id] ? "▸" : "▾";
            descendants(id, []).forEach(function (c) {
              var hidden = false, p = byId[c].parent_id;
              while (p) { if (collapsed[p]) { hidden = true; break; } p = byId[p] && byId[p].parent_id; }
              rows[c].style.display = hidden ? "none" : "";
            });
          }

          function select(id) {
            var s = byId[id]; if (!s) return;
            Object.keys(rows).forEach(function (k) { rows[k].classList.toggle("sel", k === id); });
            var d = document.getElementById("details"); d.innerHTML = "";
            var sd = s.span_data || {};
            var name = s.kind === "turn" ? "turn " + ((sd.data || {}).turn || "") + " · " + ((sd.data || {}).agent_name || "")
                     : s.kind === "handoff" ? (sd.from_agent || "?") + " → " + (sd.to_agent || "?")
                     : s.kind === "generation" ? (sd.model || "")
                     : s.kind === "resume" ? (s.resume.previous_worker || "?") + " → " + (s.resume.worker || "?")
                     : (sd.name || ((sd.data || {}).name) || "");
            d.appendChild(el("h2", null, s.kind + " " + name));
            if (s.error) {
              var e = el("div", "error", "✗ " + (s.error.message || JSON.stringify(s.error)) + (s.error.data ? "\n" + JSON.stringify(s.error.data) : ""));
              e.style.whiteSpace = "pre-wrap"; d.appendChild(e);
            }
            var tb = el("table");
            [["type", s.type + (s.kind !== s.type ? " (" + s.kind + ")" : "")], ["span id", s.id], ["parent", s.parent_id || "–"],
             ["started", s.started_at], ["ended", s.ended_at], ["duration", fmt(s.dur_ms)], ["offset", "+" + fmt(s.start_ms)]]
              .forEach(function (r) { var tr = el("tr"); tr.appendChild(el("td", null, r[0])); tr.appendChild(el("td", null, r[1])); tb.appendChild(tr); });
            d.appendChild(tb);
            if (s.kind === "resume") {
              // The gap: the interrupted stint's last journaled step to the resume.
              var r = s.resume, rt = el("table");
              d.appendChild(el("h3", null, "resume (durable run taken over)"));
              [["previous worker", r.previous_worker || "unknown"], ["worker", r.worker || "?"],
               ["lost time", r.lost_seconds != null ? fmt(r.lost_seconds * 1000) : "?"],
               ["resumed from", r.resumed_from || "?"], ["attempt", r.attempt != null ? String(r.attempt) : "?"],
               ["reason", r.reason || "–"]]
                .forEach(function (x) { var tr = el("tr"); tr.appendChild(el("td", null, x[0])); tr.appendChild(el("td", null, x[1])); rt.appendChild(tr); });
              d.appendChild(rt);
            }
            if (s.kind === "function") {
              d.appendChild(el("h3", null, "input"));
              d.appendChild(el("pre", null, pretty(sd.input)));
              d.appendChild(el("h3", null, "output"));
              d.appendChild(el("pre", null, pretty(sd.output)));
            }
            d.appendChild(el("h3", null, "span_data"));
            d.appendChild(el("pre", null, JSON.stringify(sd, null, 2)));
            if (location.hash !== "#" + id) history.replaceState(null, "", "#" + id);
          }
          function pretty(v) {
            if (v == null) return "null";
            if (typeof v === "string") { try { return JSON.stringify(JSON.parse(v), null, 2); } catch (e) { return v; } }
            return JSON.stringify(v, null, 2);
          }
          if (location.hash.length > 1) select(location.hash.slice(1));
        })();
        </script>
        </body>
        </html>
        """#
}
