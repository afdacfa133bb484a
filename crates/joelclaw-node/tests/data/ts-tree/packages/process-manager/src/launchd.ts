import { execFileSync } from "node:child_process";

export const kickstart = (target: string) => execFileSync("launchctl", ["kickstart", "-k", target]);
