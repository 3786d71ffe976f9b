// Maps a field path of berth.yaml back to the line and column where it is written.

import type { CST, Document, Node, YAMLError } from 'yaml';
import { yamlLibrary } from '../lib/yaml-library.js';

/** A field path as zod and the checks report it: keys of mappings and indexes of lists. */
export type FieldPath = readonly (string | number)[];

/** Renders a field path the way people read it: `services.web.health.interval`, `routes[0].service`. */
export function formatPath(path: FieldPath): string {
  let out = '';
  for (const segment of path) {
    out += typeof segment === 'number' ? `[${segment}]` : out === '' ? segment : `.${segment}`;
  }
  return out;
}

function startOf(node: unknown): number | undefined {
  return yamlLibrary().isNode(node) && node.range ? node.range[0] : undefined;
}

/**
 * Finds where a path is written. `target: 'key'` points at the key (for unknown fields and bad names);
 * otherwise at the value. When the path goes deeper than the document (a missing field), the answer is the key
 * of the deepest mapping that exists, so "missing" errors point at the thing that lacks the field.
 */
export function locate(doc: Document, path: FieldPath, target: 'key' | 'value'): number {
  const { isMap, isScalar, isSeq } = yamlLibrary();
  let node: unknown = doc.contents;
  let keyStart: number | undefined;
  let offset = startOf(node) ?? 0;
  let found = true;
  /** The path goes on inside a plain value: a short form (`cache: redis` for `{ kind: redis }`), whose value it is. */
  let inScalar = false;
  for (const segment of path) {
    if (isMap(node)) {
      const pair = node.items.find(
        (item) => String(isScalar(item.key) ? item.key.value : item.key) === String(segment),
      );
      if (pair === undefined) {
        found = false;
        break;
      }
      keyStart = startOf(pair.key);
      node = pair.value;
    } else if (isSeq(node) && typeof segment === 'number' && segment < node.items.length) {
      keyStart = undefined;
      node = node.items[segment];
    } else {
      found = false;
      inScalar = isScalar(node) && node.value !== null && target === 'value';
      break;
    }
    // An empty value (`web:`) has no useful position of its own; its key does.
    offset = (isScalar(node) && node.value === null ? keyStart : startOf(node)) ?? keyStart ?? offset;
  }
  if ((!found && !inScalar) || target === 'key') offset = keyStart ?? offset;
  return offset;
}

/**
 * Line and column (both from 1) of a character offset, the column counted in characters as editors count
 * them (a character outside the BMP, e.g. an emoji, is one column, not two UTF-16 units).
 */
export function positionOf(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, Math.max(0, Math.min(offset, text.length)));
  const lineStart = before.lastIndexOf('\n') + 1;
  let line = 1;
  for (let i = before.indexOf('\n'); i !== -1; i = before.indexOf('\n', i + 1)) line++;
  return { line, column: [...before.slice(lineStart)].length + 1 };
}

/**
 * Where a YAML syntax error is, as a person looks for it, and what it is. The parser reports some errors where it
 * gave up rather than where the mistake is: an unclosed `{`, `[` or quote at the end of the file, a misindented
 * key at the start of its line. Those point at the opening character, or at the key.
 */
export function placeSyntaxError(text: string, error: YAMLError): { offset: number; message: string } {
  const at = error.pos[0];
  const message = (error.message.split('\n')[0] ?? error.message).replace(/ at line \d+, column \d+:?$/, '');
  const unclosed =
    /^Flow (map|sequence) in block collection must be sufficiently indented and end with a ([}\]])/.exec(
      message,
    );
  if (unclosed) {
    const open = unclosed[1] === 'map' ? '{' : '[';
    const opener = openTokenBefore(text, at, (token) => unclosedFlow(token, open));
    if (opener !== undefined) {
      return { offset: opener, message: `this ${open} is never closed with ${unclosed[2]}` };
    }
  }
  if (error.code === 'MISSING_CHAR' && /quote/.test(message)) {
    const quoted = openTokenBefore(
      text,
      at,
      (token) =>
        (token.type === 'single-quoted-scalar' || token.type === 'double-quoted-scalar') &&
        !/^(['"])[\s\S]*\1$/.test(token.source.trimEnd()),
    );
    if (quoted !== undefined) {
      const quote = text[quoted] === '"' ? 'double' : 'single';
      return { offset: quoted, message: `this ${quote}-quoted string is never closed` };
    }
  }
  // Indentation errors point at the start of the line; the key written there is what is misplaced.
  let offset = at;
  while (text[offset] === ' ' && offset < text.length) offset++;
  if (offset === text.length || text[offset] === '\n') offset = at;
  return { offset, message };
}

type Token = CST.Token;

/** A `{` (or `[`) collection that does not end with its own closing character. */
function unclosedFlow(token: Token, open: '{' | '['): boolean {
  if (token.type !== 'flow-collection' || token.start.source !== open) return false;
  return !token.end.some((t) => t.type === (open === '{' ? 'flow-map-end' : 'flow-seq-end'));
}

/** The start of the last token before `limit` that `matches` (the innermost one, for nested collections). */
function openTokenBefore(
  text: string,
  limit: number,
  matches: (token: Token) => boolean,
): number | undefined {
  let found: number | undefined;
  const consider = (token: Token | undefined): void => {
    if (token === undefined || !('offset' in token) || token.offset > limit) return;
    if (matches(token) && (found === undefined || token.offset > found)) found = token.offset;
  };
  const { CST, Parser } = yamlLibrary();
  for (const token of new Parser().parse(text)) {
    if (token.type !== 'document') continue;
    CST.visit(token, (item) => {
      consider(item.key ?? undefined);
      consider(item.value ?? undefined);
    });
  }
  return found;
}

/** The node at a path, if it is written in the document. */
export function nodeAt(doc: Document, path: FieldPath): Node | undefined {
  const node: unknown = doc.getIn(path, true);
  return yamlLibrary().isNode(node) ? node : undefined;
}
