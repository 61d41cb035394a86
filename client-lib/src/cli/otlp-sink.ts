/**
 * The OTLP side of `vigil export --follow --otlp URL` (cli/follow.ts): MCP spans (review/follow.ts)
 * made by the OpenTelemetry JS SDK's own tracer and sent by its OTLP/HTTP protobuf exporter. Node-only;
 * loaded only when --otlp is given.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { ExportResultCode } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import type { McpSpan } from '../review/index.js';

/**
 * Sends spans through the OpenTelemetry JS SDK's OTLP/HTTP (protobuf) exporter and resolves once the
 * collector accepted them. The spans are made by the SDK's own tracer (so attributes, status and
 * resource follow the SDK), with ids set from McpSpan.
 */
export class OtlpSink {
  private readonly exporter: OTLPTraceExporter;
  private readonly provider: BasicTracerProvider;
  private readonly ended: ReadableSpan[] = [];
  /** The ids the next span takes (the tracer asks the id generator synchronously in startSpan). */
  private readonly ids = { traceId: '', spanId: '' };

  constructor(url: string) {
    this.exporter = new OTLPTraceExporter({ url });
    const ids = this.ids;
    const ended = this.ended;
    this.provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': 'vigil' }),
      idGenerator: { generateTraceId: () => ids.traceId, generateSpanId: () => ids.spanId },
      spanProcessors: [
        {
          onStart: () => undefined,
          onEnd: (span) => {
            ended.push(span);
          },
          forceFlush: () => Promise.resolve(),
          shutdown: () => Promise.resolve(),
        },
      ],
    });
  }

  async send(spans: readonly McpSpan[]): Promise<void> {
    const tracer = this.provider.getTracer('vigil-export');
    for (const s of spans) {
      this.ids.traceId = s.traceId;
      this.ids.spanId = s.spanId;
      const span = tracer.startSpan(
        s.name,
        { kind: SpanKind.CLIENT, startTime: new Date(s.startMs), attributes: s.attributes },
        ROOT_CONTEXT,
      );
      if (s.error) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end(new Date(s.endMs));
    }
    const all = this.ended.splice(0);
    for (let i = 0; i < all.length; i += 512) {
      const batch = all.slice(i, i + 512);
      await new Promise<void>((resolve, reject) => {
        this.exporter.export(batch, (r) => {
          if (r.code === ExportResultCode.SUCCESS) resolve();
          else reject(new Error(`OTLP export failed: ${r.error?.message ?? 'unknown error'}`));
        });
      });
    }
  }

  async close(): Promise<void> {
    await this.exporter.shutdown();
    await this.provider.shutdown();
  }
}
