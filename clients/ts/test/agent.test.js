// The client against a real running agent (JOELCLAW_NODE_BIN: the built binary), the way the
// joelclaw gateway would use it: status, a heal followed live on the event stream, and a
// restart, a stop and a start asked of the agent.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync, readFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import net from "node:net";
import { AgentClient, AgentError } from "../src/client.js";

const bin = process.env.JOELCLAW_NODE_BIN;

/** @returns {Promise<number>} */
function freePort() {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1", () => {
      const port = /** @type {net.AddressInfo} */ (server.address()).port;
      server.close(() => resolve(port));
    });
  });
}

/** Polls `check` every 100 ms until it returns a value, or fails naming `what` after 60 s. */
async function eventually(what, check) {
  const until = Date.now() + 60_000;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch {
      // not yet
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test("status, a heal followed live, a restart, a stop and a start through the agent", { skip: !bin && (process.env.CI === "true" ? false : "JOELCLAW_NODE_BIN is not set: run scripts/test") }, async () => {
  assert.ok(bin, "JOELCLAW_NODE_BIN is not set: CI=true never skips this test");
  const dir = mkdtempSync(join(tmpdir(), "agent-client-"));
  const port = await freePort();
  writeFileSync(
    join(dir, "node.toml"),
    `[node]
id = "ts-node"

[loop]
interval = "1s"

[heal]
failures_to_down = 1
passes_to_up = 1
grace = "1s"

[[service]]
label = "gateway"
manager = "embedded"

[[service.probe]]
kind = "http"
endpoints = [{ class = "localhost", url = "http://127.0.0.1:${port}/" }]

[service.config]
program = "\${JOELCLAW_NODE_BIN}"
args = ["demo-service", "--port", "${port}"]
`,
  );
  const agent = spawn(bin, ["run", "--inventory", join(dir, "node.toml"), "--state-dir", join(dir, "state"), "--events", join(dir, "events.jsonl")], {
    stdio: "ignore",
    env: { ...process.env, RUST_LOG: "warn" },
  });
  const servicePid = () => {
    const all = JSON.parse(readFileSync(join(dir, "state/embedded/services.json"), "utf8"));
    return all.find((s) => s.label === "gateway" && s.state === "running")?.pid;
  };
  try {
    const client = new AgentClient(join(dir, "state/agent.sock"));
    await eventually("the socket", () => existsSync(join(dir, "state/agent.sock")));
    const status = await eventually("gateway healthy", async () => {
      const { result } = await client.status();
      return result.services[0]?.health === "healthy" ? result : undefined;
    });
    assert.equal(status.node_id, "ts-node");
    const health = await client.health();
    assert.equal(health.ok, true);
    assert.equal(health.schema_version, 1);

    // Follow the stream, kill the service, see the heal as it happens.
    const abort = new AbortController();
    const seen = [];
    const following = (async () => {
      for await (const entry of client.follow(abort.signal)) {
        seen.push(entry.event.event);
        if (entry.event.event === "heal.succeeded" && entry.event.service === "gateway") {
          assert.ok(entry.seq > 0 && entry.id.startsWith("ts-node-"));
          return true;
        }
      }
      return false;
    })();
    await new Promise((r) => setTimeout(r, 300));
    process.kill(servicePid(), "SIGKILL");
    let timer;
    const healed = await Promise.race([
      following,
      new Promise((r) => (timer = setTimeout(() => r(false), 60_000))),
    ]);
    clearTimeout(timer);
    abort.abort();
    assert.ok(healed, `no heal.succeeded on the stream; saw ${seen.join(", ")}`);
    const { result } = await client.events(0);
    assert.ok(/** @type {any} */ (result).events.some((e) => e.event.event === "heal.started"));

    // The gateway's `launchctl kickstart -k`, asked of the agent: a new process answers.
    const before = servicePid();
    const restarted = await client.restart("gateway");
    assert.equal(restarted.result.did, "restarted");
    assert.equal(restarted.result.through, "agent");
    await eventually("a new gateway process", () => {
      const now = servicePid();
      return now && now !== before ? now : undefined;
    });
    // Stopped by request: not healed back; started again: healthy.
    await client.stop("gateway");
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal((await client.service("gateway")).result.health, "stopped");
    await client.start("gateway");
    await eventually("gateway healthy again", async () => {
      const s = (await client.service("gateway")).result;
      return s.health === "healthy" ? s : undefined;
    });
    await assert.rejects(client.act("gateway", /** @type {any} */ ("pause")), (e) => e instanceof AgentError && e.kind === "not-found");
    await assert.rejects(client.service("nope"), (e) => e instanceof AgentError && e.kind === "not-found");
  } finally {
    agent.kill("SIGTERM");
    await new Promise((r) => agent.once("exit", r));
  }
});
