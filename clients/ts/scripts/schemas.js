// The published schemas (../../schemas) and the type file each generates in src/.
import { compileFromFile } from "json-schema-to-typescript";

export const documents = [
  ["envelope", "src/envelope.d.ts"],
  ["status", "src/status.d.ts"],
  ["event", "src/event.d.ts"],
  ["verb-outcome", "src/verb-outcome.d.ts"],
  ["list", "src/list.d.ts"],
  ["inspect", "src/inspect.d.ts"],
  ["identity", "src/identity.d.ts"],
  ["logs", "src/logs.d.ts"],
  ["fleet-status", "src/fleet-status.d.ts"],
  ["fleet-node", "src/fleet-node.d.ts"],
  ["fleet-events", "src/fleet-events.d.ts"],
];

/** @param {string} name */
export function generate(name) {
  return compileFromFile(`../../schemas/${name}.schema.json`, { additionalProperties: false });
}
