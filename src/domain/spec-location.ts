// Maps a field path of berth.yaml back to the line and column where it is written.

import { type Document, isMap, isNode, isScalar, isSeq, type LineCounter, type Node } from 'yaml';

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
  return isNode(node) && node.range ? node.range[0] : undefined;
}

/**
 * Finds where a path is written. `target: 'key'` points at the key (for unknown fields and bad names);
 * otherwise at the value. When the path goes deeper than the document (a missing field), the answer is the key
 * of the deepest mapping that exists, so "missing" errors point at the thing that lacks the field.
 */
export function locate(doc: Document, lines: LineCounter, path: FieldPath, target: 'key' | 'value'): string {
  let node: unknown = doc.contents;
  let keyStart: number | undefined;
  let offset = startOf(node) ?? 0;
  let found = true;
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
      break;
    }
    // An empty value (`web:`) has no useful position of its own; its key does.
    offset = (isScalar(node) && node.value === null ? keyStart : startOf(node)) ?? keyStart ?? offset;
  }
  if (!found || target === 'key') offset = keyStart ?? offset;
  const { line, col } = lines.linePos(offset);
  return `${line}:${col}`;
}

/** The node at a path, if it is written in the document. */
export function nodeAt(doc: Document, path: FieldPath): Node | undefined {
  const node: unknown = doc.getIn(path, true);
  return isNode(node) ? node : undefined;
}
