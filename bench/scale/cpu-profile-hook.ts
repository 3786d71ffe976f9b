// Loaded with NODE_OPTIONS=--import (where --cpu-prof is not allowed) into every Berth process of a benchmark: the
// first SIGUSR2 starts a CPU profile, the second writes it to $BERTH_CPU_PROFILE_DIR/<script>-<pid>-<n>.cpuprofile
// (n counts the windows), so a profile covers exactly one measuring window of the benchmark.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { basename, join } from 'node:path';

const dir = process.env.BERTH_CPU_PROFILE_DIR;
if (dir !== undefined) {
  const session = new Session();
  session.connect();
  let running = false;
  let windows = 0;
  process.on('SIGUSR2', () => {
    if (!running) {
      running = true;
      session.post('Profiler.enable', () => session.post('Profiler.start'));
      return;
    }
    running = false;
    session.post('Profiler.stop', (error, result) => {
      if (error) return;
      const name = `${basename(process.argv[1] ?? 'node', '.js')}-${process.pid}-${++windows}.cpuprofile`;
      writeFileSync(join(dir, name), JSON.stringify(result.profile));
    });
  });
}
