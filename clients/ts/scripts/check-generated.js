// Fails when src/envelope.d.ts is not what the published schema generates (run `npm run gen`).
import { compileFromFile } from "json-schema-to-typescript";
import { readFileSync } from "node:fs";

const generated = await compileFromFile("../../schemas/envelope.schema.json", {
  additionalProperties: false,
});
const committed = readFileSync("src/envelope.d.ts", "utf8");
if (generated !== committed) {
  console.error("src/envelope.d.ts is stale: run `npm run gen` in clients/ts");
  process.exit(1);
}
