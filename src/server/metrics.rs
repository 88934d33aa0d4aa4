//! Prometheus text exposition at `GET /metrics`, served by a minimal HTTP/1.1 responder.

use std::fmt::Write as _;
use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::driver::{Driver, HostCounts, LISTENER_KINDS};
use crate::mux::{RouteStats, Stats, WAIT_BUCKETS_MS};

/// Largest request head accepted.
const MAX_REQUEST: usize = 8 * 1024;
/// Time a scraper gets to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// One exported series family: name, type, help and the field it reads.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    value: fn(&RouteStats) -> f64,
}

/// `u64` counters as Prometheus floats (exact below 2^53).
fn f(v: u64) -> f64 {
    v as f64
}

const FAMILIES: [Family; 19] = [
    Family {
        name: "muxql_clients",
        kind: "gauge",
        help: "Client connections on the route.",
        value: |s| f(s.clients),
    },
    Family {
        name: "muxql_clients_active",
        kind: "gauge",
        help: "Clients currently holding an upstream.",
        value: |s| f(s.clients_active),
    },
    Family {
        name: "muxql_clients_waiting",
        kind: "gauge",
        help: "Clients waiting for a free upstream.",
        value: |s| f(s.clients_waiting),
    },
    Family {
        name: "muxql_clients_pinned",
        kind: "gauge",
        help: "Clients pinned to an upstream by session state.",
        value: |s| f(s.clients_pinned),
    },
    Family {
        name: "muxql_upstreams",
        kind: "gauge",
        help: "Upstream connections of the route.",
        value: |s| f(s.upstreams),
    },
    Family {
        name: "muxql_upstreams_active",
        kind: "gauge",
        help: "Upstream connections serving a client.",
        value: |s| f(s.upstreams_active),
    },
    Family {
        name: "muxql_upstreams_idle",
        kind: "gauge",
        help: "Upstream connections idle in the pool.",
        value: |s| f(s.upstreams_idle),
    },
    Family {
        name: "muxql_peak_clients",
        kind: "gauge",
        help: "Most client connections seen at once.",
        value: |s| f(s.peak_clients),
    },
    Family {
        name: "muxql_peak_upstreams",
        kind: "gauge",
        help: "Most upstream connections seen at once.",
        value: |s| f(s.peak_upstreams),
    },
    Family {
        name: "muxql_transactions_total",
        kind: "counter",
        help: "Transactions completed.",
        value: |s| f(s.transactions),
    },
    Family {
        name: "muxql_queries_total",
        kind: "counter",
        help: "Queries completed.",
        value: |s| f(s.queries),
    },
    Family {
        name: "muxql_bytes_from_clients_total",
        kind: "counter",
        help: "Bytes received from clients.",
        value: |s| f(s.bytes_from_clients),
    },
    Family {
        name: "muxql_bytes_from_upstreams_total",
        kind: "counter",
        help: "Bytes received from upstreams.",
        value: |s| f(s.bytes_from_upstreams),
    },
    Family {
        name: "muxql_wait_seconds_total",
        kind: "counter",
        help: "Total time clients waited for an upstream.",
        value: |s| f(s.wait_ms) / 1000.0,
    },
    Family {
        name: "muxql_pins_total",
        kind: "counter",
        help: "Times a client was pinned to an upstream.",
        value: |s| f(s.pins),
    },
    Family {
        name: "muxql_upstreams_discarded_total",
        kind: "counter",
        help: "Upstream connections closed instead of reused.",
        value: |s| f(s.upstreams_discarded),
    },
    Family {
        name: "muxql_pipelined_total",
        kind: "counter",
        help: "Requests pipelined behind another client's on a busy upstream.",
        value: |s| f(s.pipelined),
    },
    Family {
        name: "muxql_pipelined_retries_total",
        kind: "counter",
        help: "Pipelined requests run again because a cancel meant for another client hit them.",
        value: |s| f(s.pipelined_retries),
    },
    Family {
        name: "muxql_statements",
        kind: "gauge",
        help: "Distinct prepared statements the route's clients hold.",
        value: |s| f(s.statements),
    },
];

/// What names a route in the labels of its series.
#[derive(Debug, Clone)]
pub(crate) struct RouteLabel {
    /// The database clients ask for.
    pub(crate) database: String,
    /// The only client user the route takes, if any.
    pub(crate) user: Option<String>,
    /// `postgres` or `mysql`.
    pub(crate) protocol: &'static str,
}

/// Escapes a label value (backslash, double quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders the statistics; `labels` name the routes, in route order; `host` has the host's
/// own counters.
pub(crate) fn render(stats: &Stats, labels: &[RouteLabel], host: &HostCounts) -> String {
    let mut out = String::with_capacity(4096);
    let label = |i: usize| match labels.get(i) {
        Some(l) => {
            let user = l
                .user
                .as_ref()
                .map(|u| format!(",user=\"{}\"", escape(u)))
                .unwrap_or_default();
            format!(
                "route=\"{}\"{user},protocol=\"{}\"",
                escape(&l.database),
                l.protocol
            )
        }
        None => format!("route=\"{i}\""),
    };
    for fam in &FAMILIES {
        let _ = writeln!(out, "# HELP {} {}", fam.name, fam.help);
        let _ = writeln!(out, "# TYPE {} {}", fam.name, fam.kind);
        for (i, rs) in stats.routes.iter().enumerate() {
            let _ = writeln!(out, "{}{{{}}} {}", fam.name, label(i), (fam.value)(rs));
        }
    }
    out.push_str("# HELP muxql_wait_seconds Time clients waited for an upstream, per request.\n");
    out.push_str("# TYPE muxql_wait_seconds histogram\n");
    for (i, rs) in stats.routes.iter().enumerate() {
        let l = label(i);
        let mut cumulative = 0u64;
        for (bound, n) in WAIT_BUCKETS_MS.iter().zip(&rs.wait_histogram) {
            cumulative += n;
            let le = *bound as f64 / 1000.0;
            let _ = writeln!(
                out,
                "muxql_wait_seconds_bucket{{{l},le=\"{le}\"}} {cumulative}"
            );
        }
        let count: u64 = rs.wait_histogram.iter().sum();
        let _ = writeln!(out, "muxql_wait_seconds_bucket{{{l},le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "muxql_wait_seconds_sum{{{l}}} {}",
            f(rs.wait_ms) / 1000.0
        );
        let _ = writeln!(out, "muxql_wait_seconds_count{{{l}}} {count}");
    }
    out.push_str(
        "# HELP muxql_client_errors_total Client sessions ended with an error, by kind.\n",
    );
    out.push_str("# TYPE muxql_client_errors_total counter\n");
    let e = &stats.errors;
    for (kind, n) in [
        ("auth", e.auth),
        ("protocol", e.protocol),
        ("upstream", e.upstream),
        ("timeout", e.timeout),
    ] {
        let _ = writeln!(out, "muxql_client_errors_total{{kind=\"{kind}\"}} {n}");
    }
    out.push_str("# HELP muxql_clients_logging_in Clients not yet authenticated.\n");
    out.push_str("# TYPE muxql_clients_logging_in gauge\n");
    let _ = writeln!(out, "muxql_clients_logging_in {}", stats.clients_logging_in);
    out.push_str("# HELP muxql_client_connections_total Clients accepted, by listener kind.\n");
    out.push_str("# TYPE muxql_client_connections_total counter\n");
    for (kind, n) in LISTENER_KINDS.iter().zip(&host.accepted) {
        let _ = writeln!(
            out,
            "muxql_client_connections_total{{listener=\"{kind}\"}} {}",
            n.get()
        );
    }
    out.push_str("# HELP muxql_tls_handshakes_total TLS handshakes, by side and result.\n");
    out.push_str("# TYPE muxql_tls_handshakes_total counter\n");
    for (side, ok, failed) in [
        ("client", &host.tls_ok, &host.tls_failed),
        ("upstream", &host.upstream_tls_ok, &host.upstream_tls_failed),
    ] {
        for (result, n) in [("ok", ok), ("failed", failed)] {
            let _ = writeln!(
                out,
                "muxql_tls_handshakes_total{{side=\"{side}\",result=\"{result}\"}} {}",
                n.get()
            );
        }
    }
    out
}

/// Accepts scrapers forever.
pub(crate) async fn serve(listener: TcpListener, driver: Rc<Driver>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::task::spawn_local(respond(stream, driver.clone()));
            }
            Err(e) => {
                tracing::warn!("metrics accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Reads one request head and answers it, then closes.
async fn respond(mut stream: TcpStream, driver: Rc<Driver>) {
    let mut head = Vec::with_capacity(512);
    let read = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut chunk = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    if !matches!(read, Ok(Ok(()))) {
        return;
    }
    let line = head
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .unwrap_or(&[]);
    let mut parts = line.split(|&b| b == b' ');
    let (method, path) = (parts.next().unwrap_or(&[]), parts.next().unwrap_or(&[]));
    let path = path.split(|&b| b == b'?').next().unwrap_or(&[]);
    let (status, body) = match (method, path) {
        (b"GET" | b"HEAD", b"/metrics") => (
            "200 OK",
            render(&driver.stats(), &driver.route_labels(), &driver.counts),
        ),
        (b"GET" | b"HEAD", _) => ("404 Not Found", "not found; try /metrics\n".to_string()),
        _ => (
            "405 Method Not Allowed",
            "only GET is supported\n".to_string(),
        ),
    };
    let mut resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != b"HEAD" {
        resp.push_str(&body);
    }
    if let Err(e) = stream.write_all(resp.as_bytes()).await {
        tracing::debug!("metrics response: {e}");
    }
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_field_with_help_and_type() {
        let mut rs = RouteStats {
            clients: 500,
            peak_upstreams: 8,
            wait_ms: 1500,
            ..RouteStats::default()
        };
        for ms in [0, 3, 3, 7000] {
            rs.record_wait(ms);
        }
        let mut stats = Stats {
            routes: vec![rs],
            clients_logging_in: 2,
            ..Stats::default()
        };
        stats.errors.auth = 4;
        let label = RouteLabel {
            database: "my\"db".into(),
            user: Some("app".into()),
            protocol: "mysql",
        };
        let host = HostCounts::default();
        host.accepted[2].set(7);
        host.tls_ok.set(3);
        let text = render(&stats, &[label], &host);
        let l = "route=\"my\\\"db\",user=\"app\",protocol=\"mysql\"";
        assert!(text.contains("muxql_client_connections_total{listener=\"ws\"} 7\n"));
        let tls = "muxql_tls_handshakes_total{side=";
        assert!(text.contains(&format!("{tls}\"client\",result=\"ok\"}} 3\n")));
        assert!(text.contains(&format!("{tls}\"client\",result=\"failed\"}} 0\n")));
        assert!(text.contains(&format!("{tls}\"upstream\",result=\"ok\"}} 0\n")));
        assert!(text.contains(&format!("muxql_clients{{{l}}} 500\n")));
        assert!(text.contains(&format!("muxql_peak_upstreams{{{l}}} 8\n")));
        assert!(text.contains(&format!("muxql_wait_seconds_total{{{l}}} 1.5\n")));
        assert!(text.contains("muxql_clients_logging_in 2\n"));
        assert!(text.contains("muxql_client_errors_total{kind=\"auth\"} 4\n"));
        assert!(text.contains("muxql_client_errors_total{kind=\"timeout\"} 0\n"));
        let b = "muxql_wait_seconds_bucket";
        assert!(text.contains(&format!("{b}{{{l},le=\"0.001\"}} 1\n")));
        assert!(text.contains(&format!("{b}{{{l},le=\"0.005\"}} 3\n")));
        assert!(text.contains(&format!("{b}{{{l},le=\"5\"}} 3\n")));
        assert!(text.contains(&format!("{b}{{{l},le=\"+Inf\"}} 4\n")));
        assert!(text.contains(&format!("muxql_wait_seconds_count{{{l}}} 4\n")));
        for fam in &FAMILIES {
            assert!(text.contains(&format!("# HELP {} ", fam.name)));
            assert!(text.contains(&format!("# TYPE {} {}\n", fam.name, fam.kind)));
        }
    }
}
