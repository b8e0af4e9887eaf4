/** A minimal server-sent events reader for fetch response bodies (WHATWG event-stream format). */

export interface SseMessage {
  id?: string;
  event: string;
  data: string;
}

/** Yields each dispatched message of the stream; comments (keep-alives) are skipped. */
export async function* readSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseMessage> {
  const decoder = new TextDecoder();
  const reader = body.getReader();
  let buf = '';
  let msg: {id?: string; event?: string; data: string[]} = {data: []};
  try {
    for (;;) {
      const {value, done} = await reader.read();
      if (done) return;
      buf += decoder.decode(value, {stream: true});
      let nl: number;
      while ((nl = buf.search(/\r\n|\n|\r/)) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + (buf.startsWith('\r\n', nl) ? 2 : 1));
        if (line === '') {
          if (msg.data.length > 0) yield {id: msg.id, event: msg.event ?? 'message', data: msg.data.join('\n')};
          msg = {data: []};
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'data') msg.data.push(value);
        else if (field === 'event') msg.event = value;
        else if (field === 'id') msg.id = value;
      }
    }
  } finally {
    reader.releaseLock();
    await body.cancel().catch(() => undefined);
  }
}
