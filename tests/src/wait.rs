//! Every wait of the suites is bounded: a step that takes too long fails the test.

use std::future::Future;
use std::time::Duration;

/// The default bound on any single awaited step.
pub const STEP: Duration = Duration::from_secs(20);

/// Fails the test if `fut` takes longer than `limit`.
pub async fn within<T>(limit: Duration, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?}"),
    }
}

/// Waits (bounded) until `path` exists with content containing `needle`, and returns it.
pub async fn wait_file(path: &str, needle: &str) -> String {
    within(STEP, async {
        loop {
            if let Ok(s) = std::fs::read_to_string(path) {
                if s.contains(needle) {
                    return s;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}
