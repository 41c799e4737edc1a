#!/usr/bin/env python3
"""The Python Agents SDK side of bench/sdk-compare.sh.

The scenario bridge runs from bench/mappings/: a Project Manager (no tools) hands off to a
Specialist, who calls two function tools (cheap deterministic functions here; bridge runs
two cheap SELECTs) and then answers. RUNS runs of Runner.run at CONCURRENCY (an asyncio
semaphore), against the stand-in model at BASE_URL through OpenAIResponsesModel, tracing off.

Prints one JSON line: runs, completed, failures, model calls (from the results' raw responses),
wall seconds, and CPU seconds of the run loop alone (without interpreter start and imports).

  python bench/sdk_bench.py --base-url http://127.0.0.1:PORT/v1 --runs 200 --concurrency 20
"""
import argparse
import asyncio
import json
import os
import resource
import sys
import time


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", required=True)
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=20)
    a = p.parse_args()

    cpu_start = cpu_seconds()
    os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")
    from openai import AsyncOpenAI
    from agents import (Agent, Runner, function_tool, set_default_openai_api, set_default_openai_client,
                        set_tracing_disabled)

    set_tracing_disabled(True)
    set_default_openai_api("responses")
    # The SDK's default client keeps up to 100 connections per host, more than the 50 concurrent
    # runs of the throughput benchmark, so no run waits for a connection.
    set_default_openai_client(AsyncOpenAI(base_url=a.base_url, api_key="x", max_retries=0), use_for_tracing=False)

    @function_tool
    def count_open_tasks(workspace: str) -> str:
        """Count the open tasks of a workspace."""
        return json.dumps([{"workspace": workspace, "open_tasks": len(workspace) * 3}])

    @function_tool
    def list_team(role: str) -> str:
        """List the team members with a role."""
        return json.dumps([{"name": "Agent %s %d" % (role, i), "role": role, "status": "active"} for i in range(3)])

    specialist = Agent(
        name="Specialist",
        instructions="You are the specialist. Check the open tasks and the team, then answer briefly.",
        model="gpt-4.1-mini",
        tools=[count_open_tasks, list_team],
        handoff_description="Checks the workload and reports.",
    )
    pm = Agent(
        name="Project Manager",
        instructions="You are the Project Manager. Hand the task off to the Specialist.",
        model="gpt-4.1",
        handoffs=[specialist],
    )
    cpu_ready = cpu_seconds()

    sem = asyncio.Semaphore(a.concurrency)
    model_calls = 0
    tool_calls = 0
    failures = []
    completed = 0

    async def one(i):
        nonlocal model_calls, tool_calls, completed
        async with sem:
            try:
                result = await Runner.run(pm, "Task %d: produce deliverable %d" % (i, i), max_turns=10)
                model_calls += len(result.raw_responses)
                tool_calls += sum(1 for item in result.new_items if item.type == "tool_call_output_item")
                if result.final_output and result.last_agent.name == "Specialist":
                    completed += 1
                else:
                    failures.append("run %d ended at %s with %r" % (i, result.last_agent.name, result.final_output))
            except Exception as e:  # counted and shown, never hidden
                failures.append("run %d: %s: %s" % (i, type(e).__name__, e))

    t0 = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(a.runs)))
    wall = time.monotonic() - t0
    cpu_end = cpu_seconds()
    print(json.dumps({"runs": a.runs, "completed": completed, "failures": len(failures), "model_calls": model_calls,
                      "tool_calls": tool_calls,
                      "wall_seconds": round(wall, 3), "cpu_setup_seconds": round(cpu_ready - cpu_start, 3),
                      "cpu_loop_seconds": round(cpu_end - cpu_ready, 3)}))
    for f in failures[:5]:
        print("failure: " + f, file=sys.stderr)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
