//! The demo's metrics: the `metrics` facade's global recorder, a Prometheus exporter
//! (`metrics-exporter-prometheus`, recorder only: no listener of its own), rendered on
//! `GET /metrics` in the Prometheus text format.
//!
//! A process has one global recorder: it is installed on first use and shared by every demo
//! the process starts (the end-to-end suites start several), so their counts add up.

use std::sync::OnceLock;

use actix_web::{HttpResponse, web};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Bucket bounds of `audius_login_verify_seconds` (a local verification takes well under a
/// millisecond with a cached user record; an API verification, a round trip to Audius).
const VERIFY_BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The process's Prometheus recorder, installed as the global one on first call. `None` when
/// another recorder was installed first (then `/metrics` says so).
pub fn prometheus() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("audius_login_verify_seconds".into()),
                    VERIFY_BUCKETS,
                )
                .expect("the bucket list is not empty");
            match builder.install_recorder() {
                Ok(handle) => Some(handle),
                Err(e) => {
                    tracing::warn!(error = %e, "no Prometheus recorder: /metrics stays empty");
                    None
                }
            }
        })
        .clone()
}

/// `GET /metrics`: every series recorded so far, in the Prometheus text format.
pub async fn render(handle: web::Data<Option<PrometheusHandle>>) -> HttpResponse {
    match handle.as_ref() {
        Some(handle) => {
            // Histograms' pending samples are folded in here (no background task needed).
            handle.run_upkeep();
            HttpResponse::Ok()
                .content_type("text/plain; version=0.0.4; charset=utf-8")
                .body(handle.render())
        }
        None => HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body("another metrics recorder is installed in this process\n"),
    }
}
