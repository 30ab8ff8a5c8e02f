//! End-to-end tests: real `events/` files parsed by lambda_http, the real handler, the Graph
//! emulator, the AWS emulator (moto_server) for Secrets Manager, and local channel receivers.

mod helpers;

mod battery;
mod browser;
mod bulk;
mod channels;
mod faults;
mod fuzz;
mod generic;
mod graph_contract;
mod graph_errors;
mod guest_life;
mod lambda_events;
mod lifecycle;
mod links;
mod metrics;
mod operators;
mod pacing;
mod presets;
mod refusals;
mod release_binary;
mod reliability;
mod resume;
mod ssrf;
mod startup;
mod tls;
