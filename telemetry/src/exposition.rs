//! `GET /metrics` in the format the scraper asks for.
//!
//! Prometheus sends `Accept: application/openmetrics-text;version=1.0.0,...;q=0.75,
//! text/plain;version=0.0.4;q=0.5,*/*;q=0.1` and gets OpenMetrics; a scraper that does not ask
//! for OpenMetrics (curl, promtool, older agents) gets the Prometheus text format 0.0.4, in
//! which counters are named with their `_total` suffix in `# HELP` and `# TYPE`, and there are
//! no `# UNIT` lines and no `# EOF`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;

/// The two text exposition formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format, version 0.0.4.
    Text,
    /// OpenMetrics 1.0.0.
    OpenMetrics,
}

const OPENMETRICS: &str = "application/openmetrics-text";

impl Format {
    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// Picks the format for an `Accept` header: OpenMetrics when it lists
    /// `application/openmetrics-text` with a weight above 0 and at least that of every other
    /// range it lists (the text format is served for any of them: `text/plain`, `*/*`, ...),
    /// the text format otherwise, and when the header is absent or unreadable.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        let mut openmetrics: f32 = 0.0;
        let mut other: f32 = 0.0;
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim();
            if media.is_empty() {
                continue;
            }
            let mut weight = Some(1.0);
            for parameter in parts {
                if let Some((name, value)) = parameter.split_once('=')
                    && name.trim().eq_ignore_ascii_case("q")
                {
                    weight = value
                        .trim()
                        .parse::<f32>()
                        .ok()
                        .filter(|q| (0.0..=1.0).contains(q));
                }
            }
            // A range with an unreadable weight is ignored.
            let Some(weight) = weight else {
                continue;
            };
            if media.eq_ignore_ascii_case(OPENMETRICS) {
                openmetrics = openmetrics.max(weight);
            } else {
                other = other.max(weight);
            }
        }
        if openmetrics > 0.0 && openmetrics >= other {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }
}

/// Encodes every metric of `registry` in `format`.
pub fn render(registry: &Registry, format: Format) -> Result<String, std::fmt::Error> {
    let mut body = String::new();
    match format {
        Format::Text => prometheus_client::encoding::prometheus_text::encode(&mut body, registry)?,
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut body, registry)?,
    }
    Ok(body)
}

async fn metrics(State(registry): State<Arc<Registry>>, headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok());
    let format = Format::negotiate(accept);
    match render(&registry, format) {
        Ok(body) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, format.content_type()),
                (header::VARY, "accept"),
            ],
            body,
        )
            .into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "cannot encode metrics\n",
        )
            .into_response(),
    }
}

/// A router serving `GET /metrics` from `registry`, to merge into a binary's own router.
pub fn metrics_router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(registry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::Unit;

    #[test]
    fn prometheus_gets_openmetrics_and_plain_clients_the_text_format() {
        let prometheus = "application/openmetrics-text;version=1.0.0,\
            application/openmetrics-text;version=0.0.1;q=0.75,\
            text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        let prometheus_3 = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,\
            application/openmetrics-text;version=0.0.1;q=0.5,\
            text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,\
            text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        for (accept, expected) in [
            (Some(prometheus), Format::OpenMetrics),
            (Some(prometheus_3), Format::OpenMetrics),
            (Some("application/openmetrics-text"), Format::OpenMetrics),
            (
                Some("Application/OpenMetrics-Text; version=1.0.0"),
                Format::OpenMetrics,
            ),
            (None, Format::Text),
            (Some(""), Format::Text),
            (Some("text/plain"), Format::Text),
            (Some("*/*"), Format::Text),
            (
                Some("text/plain;version=0.0.4;q=0.9, */*;q=0.1"),
                Format::Text,
            ),
            // Weights decide; a tie goes to OpenMetrics, a refused OpenMetrics never.
            (
                Some("text/plain;q=1, application/openmetrics-text;q=0.5"),
                Format::Text,
            ),
            (
                Some("text/plain;q=0.5, application/openmetrics-text;q=0.5"),
                Format::OpenMetrics,
            ),
            (Some("application/openmetrics-text;q=0"), Format::Text),
            // An unreadable weight drops its range.
            (Some("application/openmetrics-text;q=x"), Format::Text),
            (
                Some("application/openmetrics-text;q=2, text/plain"),
                Format::Text,
            ),
        ] {
            assert_eq!(Format::negotiate(accept), expected, "{accept:?}");
        }
    }

    fn sample_registry() -> Registry {
        let mut registry = Registry::default();
        let sub = registry.sub_registry_with_prefix("swimlb_test");
        let requests: Family<Vec<(&'static str, &'static str)>, Counter> = Family::default();
        requests
            .get_or_create(&vec![("ip", "192.0.2.1"), ("protocol", "arp")])
            .inc_by(3);
        sub.register(
            "requests_received",
            "Requests with a \\ backslash and\na newline",
            requests,
        );
        let gauge: Gauge = Gauge::default();
        gauge.set(7);
        sub.register_with_unit("memory", "Bytes in use", Unit::Bytes, gauge);
        let histogram = Histogram::new([0.001, 0.5]);
        histogram.observe(0.25);
        sub.register_with_unit("failover", "Failover time", Unit::Seconds, histogram);
        registry
    }

    #[test]
    fn the_text_format_names_counters_with_total_and_has_no_openmetrics_lines() {
        let text = render(&sample_registry(), Format::Text).expect("encodes");
        let expected = "\
# HELP swimlb_test_requests_received_total Requests with a \\\\ backslash and\\na newline.
# TYPE swimlb_test_requests_received_total counter
swimlb_test_requests_received_total{ip=\"192.0.2.1\",protocol=\"arp\"} 3
# HELP swimlb_test_memory_bytes Bytes in use.
# TYPE swimlb_test_memory_bytes gauge
swimlb_test_memory_bytes 7
# HELP swimlb_test_failover_seconds Failover time.
# TYPE swimlb_test_failover_seconds histogram
swimlb_test_failover_seconds_bucket{le=\"0.001\"} 0
swimlb_test_failover_seconds_bucket{le=\"0.5\"} 1
swimlb_test_failover_seconds_bucket{le=\"+Inf\"} 1
swimlb_test_failover_seconds_sum 0.25
swimlb_test_failover_seconds_count 1
";
        assert_eq!(text, expected);
    }

    #[test]
    fn openmetrics_has_units_family_names_and_eof() {
        let text = render(&sample_registry(), Format::OpenMetrics).expect("encodes");
        for needle in [
            "# TYPE swimlb_test_requests_received counter\n",
            "swimlb_test_requests_received_total{ip=\"192.0.2.1\",protocol=\"arp\"} 3\n",
            "# UNIT swimlb_test_memory_bytes bytes\n",
            "# UNIT swimlb_test_failover_seconds seconds\n",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[tokio::test]
    async fn the_handler_negotiates_and_labels_the_content_type() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let address = listener.local_addr().expect("address");
        let app = metrics_router(Arc::new(sample_registry()));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let get = |accept: &'static str| async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut stream = tokio::net::TcpStream::connect(address)
                .await
                .expect("connects");
            let request = format!(
                "GET /metrics HTTP/1.1\r\nHost: test\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).await.expect("writes");
            let mut response = String::new();
            stream.read_to_string(&mut response).await.expect("reads");
            response
        };
        let text = get("text/plain").await;
        assert!(
            text.to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
        let openmetrics = get("application/openmetrics-text;version=1.0.0").await;
        assert!(
            openmetrics
                .to_ascii_lowercase()
                .contains("content-type: application/openmetrics-text; version=1.0.0"),
            "{openmetrics}"
        );
        assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");
    }
}
