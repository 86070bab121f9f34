/**
 * Strict JSON for input from users (API bodies): JSON.parse's syntax, plus what YAML already
 * refuses in config files and what JSON.parse silently accepts:
 * - a key twice in one object, at any depth (JSON.parse keeps the last one: a request could
 *   say two things, and the one that wins is the one a reviewer may not see);
 * - nesting deeper than `maxDepth` (a deep body would exhaust the stack of whatever recursive
 *   code walks it next: the validator, structuredClone, a reviver);
 * - keys that could reach an object's prototype (__proto__, constructor, prototype).
 * Errors are catalogue errors whose `field` is the JSON pointer of the offending key.
 */
import { XdplbError } from '../domain/errors';

/** Deepest nesting of objects and arrays accepted (the deepest valid config is 5 levels). */
export const MAX_JSON_DEPTH = 32;

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

export interface StrictJsonOptions {
  maxDepth?: number;
  /** Names the input in messages, e.g. "(body)". */
  label?: string;
}

/** One open container while scanning: an object (its keys so far) or an array (its index). */
interface Frame { keys: Set<string> | null; key: string; index: number; expectKey: boolean }

function escapeSegment(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** The JSON pointer of the value being read (plus `last`, a key of the innermost object). */
function pointerOf(stack: Frame[], last?: string): string {
  const segments: string[] = [];
  for (let i = 0; i < stack.length; i++) {
    const frame = stack[i];
    if (i === stack.length - 1 && last !== undefined) segments.push(last);
    else if (i < stack.length - 1) segments.push(frame.keys ? frame.key : String(frame.index));
  }
  const pointer = segments.map((s) => '/' + escapeSegment(s.length > 64 ? `${s.slice(0, 64)}...` : s)).join('');
  return pointer.length > 512 ? `${pointer.slice(0, 512)}...` : pointer;
}

/**
 * Parses `text` as JSON and refuses duplicate keys, deep nesting and prototype keys.
 * @throws XdplbError XDPLB_ERR_VALIDATION naming the offending key's JSON pointer.
 */
export function parseStrictJson(text: string, options: StrictJsonOptions = {}): unknown {
  const label = options.label ?? '(document)';
  const maxDepth = options.maxDepth ?? MAX_JSON_DEPTH;
  let value: unknown;
  try {
    // Without a reviver V8 parses iteratively, so any nesting is safe here; the scan below
    // (also iterative) runs on text known to be valid JSON.
    value = JSON.parse(text);
  } catch (err) {
    throw new XdplbError('XDPLB_ERR_VALIDATION', `${label}: not valid JSON: ${(err as Error).message}`, '');
  }
  const stack: Frame[] = [];
  const fail = (field: string, reason: string): never => {
    throw new XdplbError('XDPLB_ERR_VALIDATION', `${field || label}: ${reason}`, field);
  };
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      while (text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c /* \ */ ? 2 : 1;
      const top = stack[stack.length - 1];
      if (top?.keys && top.expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (FORBIDDEN_KEYS.has(key)) fail(pointerOf(stack, key), `the key "${key}" is not allowed`);
        if (top.keys.has(key)) fail(pointerOf(stack, key), `the key "${key.length > 64 ? `${key.slice(0, 64)}...` : key}" appears twice in one object (JSON input must not repeat a key)`);
        top.keys.add(key);
        top.key = key;
        top.expectKey = false;
      }
      i = j;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (stack.length >= maxDepth) fail(pointerOf([...stack, { keys: null, key: '', index: 0, expectKey: false }]), `nested deeper than ${maxDepth} levels`);
      stack.push({ keys: c === 0x7b ? new Set() : null, key: '', index: 0, expectKey: c === 0x7b });
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
    } else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top.keys) top.expectKey = true; else top.index++;
    }
  }
  return value;
}

/**
 * For YAML text (config files; JSON is YAML): the position where flow collections ([ {) nest
 * deeper than `maxDepth`, or a line is indented more than `maxIndent` columns, or null. The
 * YAML parser recurses per level, and a deep enough document exhausts the stack, or (seen with
 * 8000 nested flow maps) aborts the whole process inside V8, so this runs before it. Quoted
 * strings and comments are skipped; the scan is conservative, never a parser.
 */
export function yamlNestingError(text: string, maxDepth = MAX_JSON_DEPTH, maxIndent = 512): { line: number; col: number; reason: string } | null {
  let depth = 0;
  let line = 1;
  let lineStart = 0;
  let atIndent = true;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\n') { line++; lineStart = i + 1; atIndent = true; continue; }
    if (atIndent) {
      if (c === ' ' || c === '\t') {
        if (i - lineStart >= maxIndent) return { line, col: i - lineStart + 1, reason: `indented deeper than ${maxIndent} columns` };
        continue;
      }
      atIndent = false;
    }
    if (c === '#' && (i === lineStart || text[i - 1] === ' ' || text[i - 1] === '\t')) {
      while (i + 1 < text.length && text[i + 1] !== '\n') i++;
    } else if ((c === '"' || c === "'") && (i === lineStart || /[\s[{,:?-]/.test(text[i - 1]))) {
      // (a quote inside a plain scalar, as in "don't", starts nothing)
      // a quoted scalar: skip to its end (doubled '' in single quotes, backslash escapes in double)
      for (i++; i < text.length; i++) {
        if (text[i] === '\n') { line++; lineStart = i + 1; }
        if (c === '"' && text[i] === '\\') { i++; continue; }
        if (text[i] === c) {
          if (c === "'" && text[i + 1] === "'") { i++; continue; }
          break;
        }
      }
    } else if (c === '[' || c === '{') {
      if (++depth > maxDepth) return { line, col: i - lineStart + 1, reason: `nested deeper than ${maxDepth} levels` };
    } else if ((c === ']' || c === '}') && depth > 0) {
      depth--;
    }
  }
  return null;
}
