import type { Readable } from 'node:stream';

/** Calls fn for every line of a JSON-lines stream (the agent's pino log): the parsed object, or undefined and the raw text. */
export function onJsonLines(stream: Readable, fn: (obj: Record<string, unknown> | undefined, raw: string) => void): void {
  let buf = '';
  stream.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const raw = buf.slice(0, i);
      buf = buf.slice(i + 1);
      let obj: Record<string, unknown> | undefined;
      try {
        obj = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        obj = undefined;
      }
      fn(obj, raw);
    }
  });
}
