// Where a `node --cpu-prof` profile spends its time: self time per function, and total time per module file.
// Run: node dist/bench/scale/profile-summary.js FILE.cpuprofile [--top 25]
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Self time (µs) per node id, from the samples and their time deltas. */
function selfTimes(profile: Profile): Map<number, number> {
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => {
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  return self;
}

function label(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const where = url === '' ? '' : ` ${basename(url)}:${lineNumber + 1}`;
  return `${functionName || '(anonymous)'}${where}`;
}

export function summarise(profile: Profile, top = 25): string {
  const self = selfTimes(profile);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const wallUs = profile.endTime - profile.startTime;
  let idle = 0;
  const byFunction = new Map<string, number>();
  // Inclusive time per source file of ours (dist/src/...): a file counts once per sample however deep it recurs.
  const byFile = new Map<string, number>();
  for (const [id, us] of self) {
    const node = byId.get(id)!;
    const name = node.callFrame.functionName;
    if (name === '(idle)' || name === '(program)') {
      if (name === '(idle)') idle += us;
    }
    byFunction.set(label(node), (byFunction.get(label(node)) ?? 0) + us);
    const files = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const url = byId.get(at)!.callFrame.url;
      const match = /\/dist\/(src\/.+\.js)$/.exec(url);
      if (match) files.add(match[1]!);
    }
    for (const file of files) byFile.set(file, (byFile.get(file) ?? 0) + us);
  }
  const busy = wallUs - idle;
  const pct = (us: number): string => `${((100 * us) / wallUs).toFixed(2)} %`;
  const lines = [
    `profile of ${(wallUs / 1e6).toFixed(1)} s: busy ${pct(busy)} of one core`,
    '',
    `top ${top} functions by self time (% of one core over the profile)`,
    ...[...byFunction.entries()]
      .filter(([name]) => !name.startsWith('(idle)'))
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => `  ${pct(us).padStart(8)}  ${name}`),
    '',
    `our modules by inclusive time`,
    ...[...byFile.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([file, us]) => `  ${pct(us).padStart(8)}  ${file}`),
  ];
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: 'string', default: '25' } },
  });
  for (const file of positionals) {
    console.log(`== ${file}`);
    console.log(summarise(JSON.parse(readFileSync(file, 'utf8')) as Profile, Number(values.top)));
  }
}
