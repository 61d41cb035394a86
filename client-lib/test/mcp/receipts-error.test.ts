// `--receipts` and a call answered by a JSON-RPC error: an error has no `_meta`, so the request's
// receipt is not lost but follows on the next message to the client, marked as a request's.
import t from 'tap';
import { createCapture } from '../../src/mcp/capture.js';
import type { JsonObject, RecordAck, RecordSink } from '../../src/mcp/types.js';

/** A sink that acknowledges every record with its position and a receipt text naming it. */
function ackingSink(): RecordSink & { records: JsonObject[] } {
  const records: JsonObject[] = [];
  return {
    records,
    async record(fields: JsonObject): Promise<RecordAck> {
      records.push(fields);
      const index = String(records.length - 1);
      return { index, receipt: `receipt of ${index}` };
    },
    async close() {},
  };
}

t.test(
  'an error answer passes through unchanged; its request receipt rides on the next message',
  async (t) => {
    const sink = ackingSink();
    const capture = createCapture({ sink, transport: 'stdio', mode: 'sync', receipts: true, seal: 'none' });
    const session = 's1';
    const request = '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"nope"}}';
    await capture.observeText('client_to_server', request, { session }).gate;
    const requestIndex = String(sink.records.findIndex((r) => r['messageType'] === 'request'));

    const error = '{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"unknown tool"}}';
    const seenError = capture.observeText('server_to_client', error, { session });
    await seenError.gate;
    // Let the answer's own acknowledgement settle (emitted acknowledged, not waited for).
    await new Promise((r) => setImmediate(r));
    t.equal(
      capture.decorate(session, seenError.classified, error),
      error,
      'the error reaches the client as sent',
    );

    const note = '{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}';
    const seenNote = capture.observeText('server_to_client', note, { session });
    await seenNote.gate;
    const decorated = JSON.parse(capture.decorate(session, seenNote.classified, note)) as {
      params: { _meta: Record<string, { id: number; index: string; receipt: string; request?: boolean }[]> };
    };
    const list = decorated.params._meta['io.vigil/receipts']!;
    const forRequest = list.find((x) => x.request === true);
    t.same(
      forRequest,
      { id: 7, index: requestIndex, receipt: `receipt of ${requestIndex}`, request: true },
      "the failed call's request receipt, marked as a request's",
    );
    const errorIndex = String(sink.records.findIndex((r) => r['messageType'] === 'error'));
    t.ok(
      list.some((x) => x.request !== true && x.index === errorIndex),
      "and the error answer's own receipt",
    );
    // Handed over once.
    const again = capture.decorate(session, seenNote.classified, note);
    t.equal(again, note, 'nothing left to hand over');
  },
);
