// A user-space TCP proxy that adds latency (the kernel here has no netem) and counts the HTTP
// traffic it carries: requests, and response body bytes, parsed passively from both directions.
// Each direction delays every chunk by half the round trip, in order; a new connection waits one
// extra round trip (the TCP handshake) before its first bytes go upstream. Bandwidth is not
// shaped here (tbf on the veth does that). Runs inside the host-under-test network namespace:
//
//   ip netns exec dadi-bench-host node --import tsx bench/coldstart/delay-proxy.ts \
//     --listen 127.0.0.1:5000 --target 10.231.0.1:5000 --rtt-ms 20
//
// Control on stdin, one command a line: `rtt N` (new round trip for new data), `reset`, `stats`
// (prints one JSON line of counters). Prints `ready` once listening. Exits when stdin closes.
// `--corrupt` flips one byte in every 4 KiB of the response bodies it carries: a peer serving
// wrong bytes behind correct HTTP framing (bench/p2p's malicious host).

import { appendFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

export interface ProxyStats {
  connections: number;
  requests: number;
  /** Requests by method, e.g. { GET: 12, HEAD: 1 }. */
  methods: Record<string, number>;
  /** Decoded bytes of response bodies (what the registry served). */
  responseBodyBytes: number;
  /** Raw bytes carried downstream (registry → host) and upstream. */
  bytesDown: number;
  bytesUp: number;
}

type State = 'head' | 'body' | 'chunk-size' | 'chunk-data' | 'chunk-crlf' | 'trailer' | 'until-close';

/** Passive HTTP/1.1 message framing for one direction of one connection. */
export class HttpFramer {
  private state: State = 'head';
  private head = '';
  private remaining = 0;
  private line = '';
  /** Body bytes of the current stream (decoded from chunked encoding). */
  bodyBytes = 0;

  constructor(
    private readonly kind: 'request' | 'response',
    /** Called with the header block; returns how the body is framed. */
    private readonly onHead: (head: string) => void,
    /** Responses: the method of the request being answered (for HEAD), taken in order. */
    private readonly nextMethod: () => string | undefined = () => undefined,
    /** Called with each stretch `buf[start, end)` of body bytes, before they are counted. */
    private readonly onBody?: (buf: Buffer, start: number, end: number) => void,
  ) {}

  feed(buf: Buffer): void {
    let i = 0;
    while (i < buf.length) {
      switch (this.state) {
        case 'head': {
          // Headers are ASCII: latin1 keeps byte offsets equal to string offsets.
          const text = buf.toString('latin1', i, Math.min(buf.length, i + 65536));
          const joined = this.head + text;
          const end = joined.indexOf('\r\n\r\n');
          if (end < 0) {
            this.head = joined.slice(-70000);
            i += text.length;
            break;
          }
          const consumed = end + 4 - this.head.length;
          const head = joined.slice(0, end);
          this.head = '';
          i += consumed;
          this.startBody(head);
          break;
        }
        case 'body': {
          const n = Math.min(this.remaining, buf.length - i);
          this.onBody?.(buf, i, i + n);
          this.bodyBytes += n;
          this.remaining -= n;
          i += n;
          if (this.remaining === 0) this.state = 'head';
          break;
        }
        case 'chunk-size':
        case 'trailer': {
          const nl = buf.indexOf(10, i);
          const stop = nl < 0 ? buf.length : nl + 1;
          this.line += buf.toString('latin1', i, stop);
          i = stop;
          if (nl < 0) break;
          const line = this.line.trim();
          this.line = '';
          if (this.state === 'trailer') {
            if (line === '') this.state = 'head';
          } else {
            const size = Number.parseInt(line.split(';')[0]!, 16);
            if (!Number.isFinite(size) || size === 0) this.state = 'trailer';
            else {
              this.remaining = size;
              this.state = 'chunk-data';
            }
          }
          break;
        }
        case 'chunk-data': {
          const n = Math.min(this.remaining, buf.length - i);
          this.onBody?.(buf, i, i + n);
          this.bodyBytes += n;
          this.remaining -= n;
          i += n;
          if (this.remaining === 0) {
            this.state = 'chunk-crlf';
            this.remaining = 2;
          }
          break;
        }
        case 'chunk-crlf': {
          const n = Math.min(this.remaining, buf.length - i);
          this.remaining -= n;
          i += n;
          if (this.remaining === 0) this.state = 'chunk-size';
          break;
        }
        case 'until-close':
          this.onBody?.(buf, i, buf.length);
          this.bodyBytes += buf.length - i;
          i = buf.length;
          break;
      }
    }
  }

  private startBody(head: string): void {
    const lines = head.split('\r\n');
    const first = lines[0] ?? '';
    const headers = new Map<string, string>();
    for (const l of lines.slice(1)) {
      const c = l.indexOf(':');
      if (c > 0) headers.set(l.slice(0, c).trim().toLowerCase(), l.slice(c + 1).trim());
    }
    const chunked = /chunked/i.test(headers.get('transfer-encoding') ?? '');
    const length = headers.has('content-length') ? Number(headers.get('content-length')) : undefined;
    let noBody = false;
    let untilClose = false;
    if (this.kind === 'response') {
      const status = Number(first.split(' ')[1]);
      if (status >= 100 && status < 200) {
        this.state = 'head'; // interim answer (100 Continue): the real one follows
        return;
      }
      this.onHead(head);
      const method = this.nextMethod();
      noBody = method === 'HEAD' || status === 204 || status === 304;
      untilClose = !chunked && length === undefined;
    } else {
      this.onHead(head);
      noBody = !chunked && !length;
    }
    if (noBody) this.state = 'head';
    else if (chunked) this.state = 'chunk-size';
    else if (untilClose) this.state = 'until-close';
    else {
      this.remaining = length!;
      this.state = length! > 0 ? 'body' : 'head';
    }
  }
}

/** A one-directional delay line: chunks leave `delayMs()` after they arrived, in order. */
function delayPipe(
  src: Socket,
  dst: Socket,
  delayMs: () => number,
  notBefore: () => number,
  onChunk: (b: Buffer) => void,
) {
  const queue: { due: number; chunk: Buffer }[] = [];
  let queued = 0;
  let scheduled = false;
  let srcEnded = false;
  const HIGH = 8 << 20;
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    setTimeout(flush, Math.max(0, (queue[0]?.due ?? 0) - performance.now()));
  };
  const flush = () => {
    scheduled = false;
    const now = performance.now();
    while (queue.length && queue[0]!.due <= now) {
      const { chunk } = queue.shift()!;
      queued -= chunk.length;
      if (!dst.destroyed) dst.write(chunk);
    }
    if (queue.length) schedule();
    else if (srcEnded && !dst.destroyed) dst.end();
    if (queued < HIGH && !dst.writableNeedDrain && src.isPaused()) src.resume();
  };
  dst.on('drain', () => {
    if (queued < HIGH && src.isPaused()) src.resume();
  });
  src.on('data', (chunk: Buffer) => {
    onChunk(chunk);
    const now = performance.now();
    const due = Math.max(now, notBefore()) + delayMs();
    if (due <= now && !queue.length) {
      // Due now with nothing ahead of it (no added round trip: the loopback link): out at once. A
      // timer, even of 0 ms, fires no sooner than 1 ms later, which added ~2.3 ms to every
      // request on the "unshaped" link (16 KiB range GETs: 4.4 -> 6.3 ms median).
      if (!dst.destroyed) dst.write(chunk);
      if (dst.writableNeedDrain) src.pause();
      return;
    }
    queue.push({ due, chunk });
    queued += chunk.length;
    if (queued >= HIGH || dst.writableNeedDrain) src.pause();
    schedule();
  });
  src.on('end', () => {
    srcEnded = true;
    schedule();
  });
}

function hostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i), port: Number(s.slice(i + 1)) };
}

/** Flip one byte in every 4 KiB of body (positions counted over the connection's bodies). */
function corrupter(): (buf: Buffer, start: number, end: number) => void {
  let seen = 0;
  return (buf, start, end) => {
    for (let i = start; i < end; i++) if ((seen + i - start) % 4096 === 0) buf[i]! ^= 0xff;
    seen += end - start;
  };
}

export function startProxy(listen: string, target: string, rttMs: number, opts: { corrupt?: boolean } = {}) {
  let rtt = rttMs;
  const stats: ProxyStats = {
    connections: 0,
    requests: 0,
    methods: {},
    responseBodyBytes: 0,
    bytesDown: 0,
    bytesUp: 0,
  };
  const t = hostPort(target);
  // $DADI_BENCH_PROXY_LOG=FILE: each request and response head's first line (and Range) with the
  // wall clock, as it passes the proxy (profiling: which reads a start waits for, and when).
  const logFile = process.env.DADI_BENCH_PROXY_LOG;
  const logRequest = logFile
    ? (conn: number, head: string) => {
        const range = /\r\n(?:range|content-range): *([^\r]*)/i.exec(head)?.[1] ?? '';
        appendFileSync(logFile, `${new Date().toISOString()} c${conn} ${head.slice(0, head.indexOf('\r'))} ${range}\n`);
      }
    : undefined;
  const server = createServer({ noDelay: true }, (client) => {
    stats.connections++;
    const opened = performance.now();
    // The handshake costs one round trip before the first request bytes can leave.
    const ready = opened + rtt;
    const upstream = connect({ host: t.host, port: t.port, noDelay: true });
    const methods: string[] = [];
    const conn = stats.connections;
    const req = new HttpFramer('request', (head) => {
      logRequest?.(conn, head);
      const m = head.slice(0, head.indexOf(' '));
      methods.push(m);
      stats.requests++;
      stats.methods[m] = (stats.methods[m] ?? 0) + 1;
    });
    const res = new HttpFramer(
      'response',
      (head) => logRequest?.(conn, head),
      () => methods.shift(),
      opts.corrupt ? corrupter() : undefined,
    );
    let lastBody = 0;
    const half = () => rtt / 2;
    delayPipe(
      client,
      upstream,
      half,
      () => ready,
      (b) => {
        stats.bytesUp += b.length;
        req.feed(b);
      },
    );
    delayPipe(
      upstream,
      client,
      half,
      () => 0,
      (b) => {
        stats.bytesDown += b.length;
        res.feed(b);
        stats.responseBodyBytes += res.bodyBytes - lastBody;
        lastBody = res.bodyBytes;
      },
    );
    const kill = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', kill);
    upstream.on('error', kill);
    client.on('close', () => setTimeout(() => upstream.destroy(), rtt + 50).unref());
    upstream.on('close', () => setTimeout(() => client.destroy(), rtt + 50).unref());
  });
  const l = hostPort(listen);
  return {
    stats,
    server,
    setRtt: (ms: number) => {
      rtt = ms;
    },
    reset: () => {
      Object.assign(stats, {
        connections: 0,
        requests: 0,
        methods: {},
        responseBodyBytes: 0,
        bytesDown: 0,
        bytesUp: 0,
      });
    },
    listening: new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(l.port, l.host, () => resolve());
    }),
    close: () => server.close(),
  };
}

const isMain = process.argv[1]?.endsWith('delay-proxy.ts') || process.argv[1]?.endsWith('delay-proxy.js');
if (isMain) {
  const { values } = parseArgs({
    options: {
      listen: { type: 'string' },
      target: { type: 'string' },
      'rtt-ms': { type: 'string', default: '0' },
      corrupt: { type: 'boolean', default: false },
    },
  });
  if (!values.listen || !values.target) {
    console.error('usage: delay-proxy --listen HOST:PORT --target HOST:PORT [--rtt-ms N] [--corrupt]');
    process.exit(2);
  }
  const p = startProxy(values.listen, values.target, Number(values['rtt-ms']), { corrupt: values.corrupt });
  await p.listening;
  console.log('ready');
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const [cmd, arg] = line.trim().split(/\s+/);
    if (cmd === 'rtt') p.setRtt(Number(arg));
    else if (cmd === 'reset') p.reset();
    else if (cmd === 'stats') console.log(JSON.stringify(p.stats));
  });
  rl.on('close', () => process.exit(0));
}
