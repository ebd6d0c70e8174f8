//! The task that keeps job outcomes flowing into the attached [`crate::JobStore`]
//! (RabbitMQ: a consumer of the status queue; in-process: nothing, records go straight in).

use std::future::Future;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Keeps job outcomes flowing into the attached store. Stops when dropped or on `stop`.
#[derive(Debug, Default)]
pub struct StatusFeed {
    stop: Option<watch::Sender<bool>>,
    task: Option<JoinHandle<()>>,
}

impl StatusFeed {
    /// A feed with nothing to run (the backend records outcomes directly).
    pub fn direct() -> Self {
        Self::default()
    }

    /// Spawns `run`, handing it a receiver that changes when the feed is stopped.
    pub fn spawn<F, Fut>(run: F) -> Self
    where
        F: FnOnce(watch::Receiver<bool>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = watch::channel(false);
        Self {
            stop: Some(stop),
            task: Some(tokio::spawn(run(stopped))),
        }
    }

    /// Stops the feed, letting events in progress finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for StatusFeed {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
