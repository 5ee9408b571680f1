// Process entry of the host daemon when the client starts it on demand (see client.ts):
// runs the daemon in the foreground on $DADI_STATE until shutdown, then exits. Its config file is
// $DADI_CONFIG or /etc/dadi/config.yaml (the client passes its environment on).
// The CLI's `dadi daemon` command calls runHostDaemon() itself instead. No warm-up here: the client
// that started this daemon is about to ask for a start (see host-daemon.ts warmUp).

import { runHostDaemon } from './host-daemon.js';

try {
  await runHostDaemon({ warmUp: false });
  // 0, or 1 when an uncaught exception made the daemon drain (runtime/process-faults.ts).
  process.exit();
} catch (e) {
  process.stderr.write(`dadi daemon: ${(e as Error).message}\n`);
  process.exit(1);
}
