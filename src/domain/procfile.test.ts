// Tests of Procfile parsing.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseProcfile } from './procfile.js';

describe('parseProcfile', () => {
  it('reads process types and commands, skipping blank lines and comments', () => {
    const text =
      '# processes\nweb: node server.js --port $PORT\n\nworker:node worker.js\r\nrelease_1 :  npm run migrate \n';
    assert.deepEqual(parseProcfile(text), {
      processes: {
        web: 'node server.js --port $PORT',
        worker: 'node worker.js',
        release_1: 'npm run migrate',
      },
      issues: [],
    });
  });

  it('reports malformed lines, empty commands and repeated types with their positions', () => {
    const text = 'web: node a.js\n  just a command\nworker:\nweb: node b.js\n';
    assert.deepEqual(parseProcfile(text, 'app/Procfile').issues, [
      {
        path: '',
        location: 'app/Procfile:2:3',
        message: 'expected "<process type>: <command>", got "just a command"',
      },
      { path: 'worker', location: 'app/Procfile:3:1', message: 'process type "worker" has no command' },
      { path: 'web', location: 'app/Procfile:4:1', message: 'process type "web" is defined twice' },
    ]);
  });
});
