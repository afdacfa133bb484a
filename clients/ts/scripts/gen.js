// Writes src/*.d.ts from the published schemas (`npm run gen`).
import { writeFileSync } from "node:fs";
import { documents, generate } from "./schemas.js";

for (const [name, file] of documents) {
  writeFileSync(file, await generate(name));
}
