// Fails when a src/*.d.ts is not what its published schema generates (run `npm run gen`).
import { readFileSync } from "node:fs";
import { documents, generate } from "./schemas.js";

let stale = false;
for (const [name, file] of documents) {
  const committed = readFileSync(file, "utf8");
  if ((await generate(name)) !== committed) {
    console.error(`${file} is stale: run \`npm run gen\` in clients/ts`);
    stale = true;
  }
}
if (stale) process.exit(1);
