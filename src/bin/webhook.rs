//! The `webhook` Lambda function: `POST /webhooks/{source}` behind a Function URL or API Gateway.

use invite_relay::config::Role;
use invite_relay::{App, telemetry};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let app = match App::from_env(Role::Webhook).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "invite-relay cannot start");
            return Err(e.into());
        }
    };
    let app = &app;
    // The event is taken as JSON and turned into a request by the library, which answers
    // every malformed shape instead of panicking (lambda_http's own conversion can panic).
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(
            app.on_lambda_event(event.payload, Some(event.context))
                .await,
        )
    }))
    .await
}
