// A client of the joelclaw node agent's local API: HTTP over the agent's Unix socket
// (STATE/agent.sock), Node's own `http`, no framework. Every JSON answer is the agent's envelope
// (types generated from schemas/envelope.schema.json into envelope.d.ts). This is what the
// joelclaw gateway calls instead of `launchctl kickstart -k` / `launchctl print`.
import http from "node:http";

/** @typedef {import("./envelope.js").Envelope} Envelope */
/** @typedef {import("./status.js").NodeStatus} NodeStatus */
/** @typedef {import("./status.js").ServiceSnapshot} ServiceSnapshot */
/** @typedef {import("./event.js").JournalEntry} JournalEntry */
/** @typedef {import("./verb-outcome.js").VerbOutcome} VerbOutcome */
/**
 * An envelope whose `result` is a `T` (the published schema of that answer).
 * @template T
 * @typedef {Omit<Envelope, "result"> & { result: T }} Answer
 */

/** An answer whose envelope says the agent could not do it. */
export class AgentError extends Error {
  /**
   * @param {number} status
   * @param {Envelope} envelope
   */
  constructor(status, envelope) {
    super(envelope.error?.message ?? `HTTP ${status}`);
    this.name = "AgentError";
    /** The HTTP status. */
    this.status = status;
    /** The stable error code (`not-found`, `not-supported`...). */
    this.kind = envelope.error?.kind ?? "failed";
    /** The whole envelope. */
    this.envelope = envelope;
  }
}

export class AgentClient {
  /**
   * @param {string} socketPath the agent's socket (STATE/agent.sock)
   * @param {{ timeoutMs?: number }} [options] every request's deadline (default 5 s)
   */
  constructor(socketPath, options = {}) {
    this.socketPath = socketPath;
    this.timeoutMs = options.timeoutMs ?? 5000;
  }

  /**
   * One request; resolves with the envelope, rejects with an AgentError when it says `ok: false`
   * because of an error (findings are results, not errors).
   * @param {string} method
   * @param {string} path
   * @returns {Promise<Envelope>}
   */
  request(method, path) {
    return new Promise((resolve, reject) => {
      const req = http.request(
        { socketPath: this.socketPath, method, path, timeout: this.timeoutMs },
        (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (chunk) => (body += chunk));
          res.on("end", () => {
            /** @type {Envelope} */
            let envelope;
            try {
              envelope = JSON.parse(body);
            } catch (e) {
              reject(new Error(`${method} ${path}: not JSON (${e}): ${body.slice(0, 200)}`));
              return;
            }
            if (envelope.error) reject(new AgentError(res.statusCode ?? 0, envelope));
            else resolve(envelope);
          });
        },
      );
      // A deadline passed is a timeout, never mistaken for the agent being down.
      req.on("timeout", () => req.destroy(new Error(`${method} ${path}: timed out after ${this.timeoutMs} ms`)));
      req.on("error", reject);
      req.end();
    });
  }

  /** The agent answers: its node and its last round. */
  health() {
    return this.request("GET", "/v1/health");
  }

  /**
   * The live snapshot of the agent's last round.
   * @returns {Promise<Answer<NodeStatus>>}
   */
  status() {
    return /** @type {Promise<Answer<NodeStatus>>} */ (/** @type {unknown} */ (this.request("GET", "/v1/status")));
  }

  /**
   * One service of that snapshot.
   * @param {string} label
   * @returns {Promise<Answer<ServiceSnapshot>>}
   */
  service(label) {
    return /** @type {Promise<Answer<ServiceSnapshot>>} */ (
      /** @type {unknown} */ (this.request("GET", `/v1/services/${encodeURIComponent(label)}`))
    );
  }

  /**
   * A service verb through the agent, serialized with its heals. A `stop` or `disable` is kept
   * (the agent does not heal the service back) until `start` or `enable`.
   * @param {string} label
   * @param {VerbOutcome["verb"]} verb
   * @returns {Promise<Answer<VerbOutcome>>}
   */
  act(label, verb) {
    return /** @type {Promise<Answer<VerbOutcome>>} */ (
      /** @type {unknown} */ (this.request("POST", `/v1/services/${encodeURIComponent(label)}/${verb}`))
    );
  }

  /**
   * Asks the agent to restart a service (what `launchctl kickstart -k` did).
   * @param {string} label
   */
  restart(label) {
    return this.act(label, "restart");
  }

  /**
   * Stops a service; the agent does not heal it back until it is started.
   * @param {string} label
   */
  stop(label) {
    return this.act(label, "stop");
  }

  /**
   * Starts a service; healed again from then on.
   * @param {string} label
   */
  start(label) {
    return this.act(label, "start");
  }

  /**
   * The kept events after `since`.
   * @param {number} [since]
   */
  events(since = 0) {
    return this.request("GET", `/v1/events?since=${since}`);
  }

  /**
   * Follows the live event stream (Server-Sent Events), yielding each journal entry
   * (`{seq, id, event}`) until `signal` aborts.
   * @param {AbortSignal} [signal]
   * @returns {AsyncGenerator<JournalEntry>}
   */
  async *follow(signal) {
    const res = await new Promise((resolve, reject) => {
      const req = http.request(
        { socketPath: this.socketPath, method: "GET", path: "/v1/events/stream", signal },
        resolve,
      );
      req.on("error", reject);
      req.end();
    });
    /** @type {import("node:http").IncomingMessage} */
    const stream = /** @type {any} */ (res);
    stream.setEncoding("utf8");
    let buffer = "";
    try {
      for await (const chunk of stream) {
        buffer += chunk;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = frame
            .split("\n")
            .filter((l) => l.startsWith("data:"))
            .map((l) => l.slice(5).trimStart())
            .join("\n");
          if (data) yield JSON.parse(data);
        }
      }
    } catch (e) {
      if (!signal?.aborted) throw e;
    }
  }
}
