//! The `webhook` Lambda function: `POST /webhooks/{source}` behind a Function URL or API Gateway.

use invite_relay::config::Role;
use invite_relay::{App, telemetry};
use lambda_http::{Error, Request, service_fn};

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
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(app.handle(req).await)
    }))
    .await
}
