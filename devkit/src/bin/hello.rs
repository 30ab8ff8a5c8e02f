//! The floor for cold-start measurements: a minimal `lambda_http` function, built with the same
//! profile as `webhook`.

use lambda_http::{Body, Error, Request, Response, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_req: Request| async {
        Ok::<_, Error>(
            Response::builder()
                .status(200)
                .body(Body::Text("hello".into()))
                .expect("static response"),
        )
    }))
    .await
}
