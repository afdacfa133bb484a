import { execSync } from "node:child_process";

export function restartGateway(uid: number): void {
  // Restarts the gateway after a config change.
  execSync(`launchctl kickstart -k gui/${uid}/com.joelclaw.gateway`);
}
