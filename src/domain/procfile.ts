// Heroku-style Procfile: one `<process type>: <command>` per line; the process type names a service.

import type { Issue } from './errors.js';

/** A parsed Procfile: commands by process type, and any malformed lines (with `file:line:column`). */
export interface Procfile {
  processes: Record<string, string>;
  issues: Issue[];
}

// Heroku's own pattern: alphanumerics, dashes and underscores, a colon, then the command.
const LINE = /^([A-Za-z0-9_-]+)[ \t]*:[ \t]*(.*)$/;

/**
 * Parses Procfile text. Blank lines and `#` comments are skipped. A malformed line, an empty command or a
 * repeated process type becomes an issue rather than an exception, so the caller can report it with other problems.
 */
export function parseProcfile(text: string, file = 'Procfile'): Procfile {
  const processes: Record<string, string> = {};
  const issues: Issue[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const column = raw.indexOf(line) + 1;
    const location = `${file}:${index + 1}:${column}`;
    const match = LINE.exec(line);
    if (match === null) {
      issues.push({
        path: '',
        location,
        message: `expected "<process type>: <command>", got ${JSON.stringify(line)}`,
      });
      return;
    }
    const type = match[1] ?? '';
    const command = (match[2] ?? '').trim();
    if (command === '') {
      issues.push({ path: type, location, message: `process type "${type}" has no command` });
    } else if (Object.hasOwn(processes, type)) {
      issues.push({ path: type, location, message: `process type "${type}" is defined twice` });
    } else {
      processes[type] = command;
    }
  });
  return { processes, issues };
}
