/**
 * Reads ferry's own import graph (relative imports of `.ts` files) and measures functions, for the
 * layout test. Plain text parsing: ferry's code is formatted by `deno fmt`, so imports, function
 * headers and closing braces sit where the formatter puts them.
 */

/** Longest file of `src/`, in lines. */
export const FILE_LINES_MAX = 500;
/** Longest function, method or inline handler, in lines (header and closing brace included). */
export const FUNCTION_LINES_MAX = 70;

/** Files (paths relative to the root) and the files each imports. */
export interface ImportGraph {
  edges: Map<string, Set<string>>;
  texts: Map<string, string>;
}

const _IMPORT_PATTERN =
  /(?:^|\n)\s*(?:import|export)\s+(?:type\s+)?(?:[^"';]*?\s+from\s+)?["'](\.{1,2}\/[^"']+)["']/g;
const _DYNAMIC_IMPORT_PATTERN = /\bimport\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g;

/** Reads every `.ts` file under `paths` (files or folders, relative to `root`). */
export async function readImportGraph(
  root: string,
  paths: readonly string[],
): Promise<ImportGraph> {
  const files: string[] = [];
  for (const path of paths) await _collect(root, path, files);
  const edges = new Map<string, Set<string>>();
  const texts = new Map<string, string>();
  for (const file of files) {
    const text = await Deno.readTextFile(`${root}${file}`);
    texts.set(file, text);
    const targets = new Set<string>();
    for (const pattern of [_IMPORT_PATTERN, _DYNAMIC_IMPORT_PATTERN]) {
      for (const match of text.matchAll(pattern)) targets.add(_resolve(file, match[1]!));
    }
    edges.set(file, targets);
  }
  return { edges, texts };
}

async function _collect(root: string, path: string, out: string[]): Promise<void> {
  const info = await Deno.stat(`${root}${path}`);
  if (info.isFile) {
    if (path.endsWith(".ts")) out.push(path);
    return;
  }
  const names = [];
  for await (const entry of Deno.readDir(`${root}${path}`)) names.push(entry.name);
  for (const name of names.sort()) await _collect(root, `${path}/${name}`, out);
}

function _resolve(from: string, specifier: string): string {
  const parts = from.split("/").slice(0, -1);
  for (const part of specifier.split("/")) {
    if (part === "..") parts.pop();
    else if (part !== ".") parts.push(part);
  }
  return parts.join("/");
}

/** One circle per strongly connected component with more than one file (or a self-import). */
export function importCycles(graph: ImportGraph): string[][] {
  const cycles: string[][] = [];
  for (const component of _components(graph.edges)) {
    const [first] = [...component].sort();
    const selfLoop = graph.edges.get(first!)?.has(first!) ?? false;
    if (component.size > 1 || selfLoop) cycles.push(_cycleThrough(first!, component, graph.edges));
  }
  return cycles;
}

/** Tarjan's strongly connected components. */
function _components(edges: Map<string, Set<string>>): Set<string>[] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: Set<string>[] = [];
  const visit = (node: string): void => {
    index.set(node, counter);
    low.set(node, counter);
    counter += 1;
    stack.push(node);
    onStack.add(node);
    for (const next of edges.get(node) ?? []) {
      if (!index.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node)!, low.get(next)!));
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node)!, index.get(next)!));
      }
    }
    if (low.get(node) !== index.get(node)) return;
    const component = new Set<string>();
    let member: string;
    do {
      member = stack.pop()!;
      onStack.delete(member);
      component.add(member);
    } while (member !== node);
    out.push(component);
  };
  for (const node of [...edges.keys()].sort()) if (!index.has(node)) visit(node);
  return out;
}

/** A shortest path from `start` back to itself inside `component` (breadth first). */
function _cycleThrough(
  start: string,
  component: Set<string>,
  edges: Map<string, Set<string>>,
): string[] {
  const previous = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const node = queue.shift()!;
    for (const next of [...(edges.get(node) ?? [])].sort()) {
      if (!component.has(next)) continue;
      if (next === start) {
        const path = [start];
        for (let at = node; at !== start; at = previous.get(at)!) path.splice(1, 0, at);
        return [...path, start];
      }
      if (!previous.has(next)) {
        previous.set(next, node);
        queue.push(next);
      }
    }
  }
  return [start, start];
}

/** A function, method or `=> {` handler: its name, first line (1-based) and length in lines. */
export interface FunctionSpan {
  name: string;
  startLine: number;
  lines: number;
}

const _FUNCTION_HEADER = /^(\s*)(?:export\s+)?(?:default\s+)?(?:async\s+)?function\*?\s+(\w+)/;
const _METHOD_HEADER =
  /^(\s*)(?:(?:static|private|public|protected|readonly|override)\s+)*(?:async\s+)?\*?(?:(?:get|set)\s+)?(#?[A-Za-z_$][\w$]*)\s*(?:<[^()]*>)?\(/;
const _ARROW_HEADER = /^(\s*).*?(\([^()]*\))\s*(?::\s*[^=]+)?=>\s*\{$/;
const _NOT_METHODS = new Set(["if", "for", "while", "switch", "catch", "with", "return", "else"]);

/** The spans of every function of a `deno fmt`-formatted file. */
export function functionSpans(text: string): FunctionSpan[] {
  const lines = text.split("\n");
  const spans: FunctionSpan[] = [];
  lines.forEach((line, index) => {
    const header = _headerOf(line);
    if (!header) return;
    const bodyStart = _bodyStart(lines, index, header.indent);
    if (bodyStart === undefined) return;
    const end = _closingLine(lines, bodyStart, header.indent);
    if (end === undefined) return;
    spans.push({ name: header.name, startLine: index + 1, lines: end - index + 1 });
  });
  return spans;
}

function _headerOf(line: string): { indent: string; name: string } | undefined {
  const fn = _FUNCTION_HEADER.exec(line);
  if (fn) return { indent: fn[1]!, name: fn[2]! };
  const method = _METHOD_HEADER.exec(line);
  if (method && !_NOT_METHODS.has(method[2]!) && /(\{|\()$/.test(line.trimEnd())) {
    return { indent: method[1]!, name: method[2]! };
  }
  const arrow = _ARROW_HEADER.exec(line);
  if (arrow) return { indent: arrow[1]!, name: `${arrow[2]} =>` };
  return undefined;
}

/** The line that opens the body: the header itself, or a later `): T {` at its indentation. */
function _bodyStart(lines: readonly string[], index: number, indent: string): number | undefined {
  if (lines[index]!.trimEnd().endsWith("{")) return index;
  for (let i = index + 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith(`${indent})`) && line.trimEnd().endsWith("{")) return i;
    if (line.startsWith(`${indent})`) || (line.trim() !== "" && !line.startsWith(`${indent} `))) {
      return undefined;
    }
  }
  return undefined;
}

function _closingLine(lines: readonly string[], from: number, indent: string): number | undefined {
  for (let i = from + 1; i < lines.length; i++) {
    if (lines[i]!.startsWith(`${indent}}`)) return i;
  }
  return undefined;
}
