/**
 * The scrape side of the metrics: the OpenTelemetry SDK's pull reader collects a `Registry`
 * through a `MetricProducer`, and the Prometheus exporter's serializer writes the text.
 * Loaded at the first scrape (`mod.ts`): the SDK and the exporter are about 7 MiB of a
 * daemon's resident memory, which a sidecar that is never scraped does not need.
 * @module
 */
import {
  type CollectionResult,
  MeterProvider,
  type MetricProducer,
  MetricReader,
} from "@opentelemetry/sdk-metrics";
import { PrometheusSerializer } from "@opentelemetry/exporter-prometheus";
import { type Resource, resourceFromAttributes } from "@opentelemetry/resources";
import type { Registry } from "./aggregate.ts";

/** Collects only when asked (a scrape); no timer, no push. */
class ScrapeReader extends MetricReader {
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

/** `registry` as the SDK's readers take it, every series under `resource`. */
export function producerOf(registry: Registry, resource: Resource): MetricProducer {
  return {
    collect: (): Promise<CollectionResult> => {
      const metrics = registry.collect();
      return Promise.resolve({
        resourceMetrics: {
          resource,
          scopeMetrics: metrics.length === 0 ? [] : [{ scope: { name: registry.scope }, metrics }],
        },
        errors: [],
      });
    },
  };
}

export interface Scraper {
  /** Prometheus text exposition of everything recorded so far. */
  render(): Promise<string>;
  close(): Promise<void>;
}

export function createScraper(registry: Registry, serviceName: string): Scraper {
  const resource = resourceFromAttributes({ "service.name": serviceName });
  const reader = new ScrapeReader({ metricProducers: [producerOf(registry, resource)] });
  const provider = new MeterProvider({ resource, readers: [reader] });
  const serializer = new PrometheusSerializer(undefined, false, undefined, true, true);
  return {
    async render() {
      const { resourceMetrics } = await reader.collect();
      return serializer.serialize(resourceMetrics);
    },
    close: () => provider.shutdown(),
  };
}
