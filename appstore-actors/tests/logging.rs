//! The engine's own log lines: JSON, each carrying the job id. A test binary of its own, because
//! tracing's per-thread subscribers race with tests running in parallel.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first failure

mod common;

use appstore_actors::engine::CancelFlag;
use appstore_core::job::JobState;
use common::{radicale, world, SECRET};
use std::sync::Arc;

/// A log sink for one test.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn engine_logs_are_json_lines_carrying_the_job_id() {
    let w = world();
    let sink = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_writer(sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let job = w
        .engine
        .create_install_job(&w.snapshot, &radicale())
        .await
        .unwrap();
    assert_eq!(
        w.engine
            .run_install(
                job,
                Arc::clone(&w.snapshot),
                radicale(),
                CancelFlag::default()
            )
            .await
            .unwrap(),
        JobState::Completed
    );
    let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let states: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "job state")
        .collect();
    assert_eq!(states.len(), 14, "{text}");
    assert!(
        states.iter().all(|l| l["fields"]["job_id"] == job),
        "{text}"
    );
    let end = lines
        .iter()
        .find(|l| l["fields"]["message"] == "job ended")
        .unwrap_or_else(|| panic!("no `job ended` line in:\n{text}"));
    assert_eq!(
        (
            end["fields"]["to"].as_str(),
            end["fields"]["job_id"].as_i64()
        ),
        (Some("completed"), Some(job))
    );
    assert!(!text.contains(SECRET));
}
