"""An OpenTelemetry SDK tracer and meter provider recording in memory, for the tests of
``tango_async.otel`` (needs opentelemetry-sdk: import it after ``importorskip``)."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tango_async.otel import Telemetry


class Otel:
    """An SDK tracer and meter provider recording in memory, and their Telemetry."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.telemetry = Telemetry(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider
        )

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def _points(self) -> list[tuple[str, Any]]:
        data = self.reader.get_metrics_data()
        assert data is not None
        return [
            (metric.name, point)
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            for point in metric.data.data_points
        ]

    def metrics(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        """metric name -> [(attributes, value or histogram count and sum)]."""
        out: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        for name, point in self._points():
            value = getattr(point, "value", None)
            if value is None:
                value = (point.count, point.sum)
            out.setdefault(name, []).append((dict(point.attributes or {}), value))
        return out

    def metric_texts(self) -> list[str]:
        """Every metric name, attribute key and attribute value, as text."""
        out: list[str] = []
        for name, point in self._points():
            out.append(name)
            for k, v in dict(point.attributes or {}).items():
                out += [str(k), str(v)]
        return out
