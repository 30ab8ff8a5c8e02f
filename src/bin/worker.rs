//! The `worker` Lambda function: consumes the queue (partial batch failures) and EventBridge
//! events, invites through Graph and delivers the link.

use invite_relay::config::Role;
use invite_relay::resilience::Deadline;
use invite_relay::{App, telemetry, worker};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let app = match App::from_env(Role::Worker).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "invite-relay worker cannot start");
            return Err(e.into());
        }
    };
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // Keep a second to answer (and report batch failures) before Lambda's own deadline.
        let deadline = Deadline::from_lambda(
            event.context.deadline,
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(25),
        );
        worker::handle(app, event.payload, deadline)
            .await
            .map_err(Error::from)
    }))
    .await
}
